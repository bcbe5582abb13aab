-- Publish items: move the cursor and append their ledger leaves, only under
-- the live lease (epoch, holder) with its node lease live, and with the
-- cursor at prev_seq.
-- KEYS: lock, cursor, hashes, ledger (stream), meta, checkpoints, cpsizes, the holder's node-lease hash,
--       snapshot rows (hash id -> row), snapshot ids (sorted set, score 0), queue (stream)
-- ARGV: channel, holder, epoch, prev_seq, n, at_ns (the time of every leaf), then the n item
--       hashes (seqs prev_seq+1..), then checkpoint size and json ('' '' = none): stored if
--       above every stored size; then m and m pairs (id, row): the snapshot's moves
--       (snapshot.go), row '' for a tombstone, which removes the id; then the items as the
--       commit's message carries them to the other nodes ('' for none: recent.go); then,
--       for a commit sent with the append that wrote its items (publishing on append,
--       redis/fused.go), the body prefix "<first seq> <ingested_us> " of that append's
--       entry, else '': the commit is made only if the queue's entry at its last seq
--       (KEYS[11], the queue) is that append's.
-- The leaves become one ledger segment (entry.go): entry id "<its last seq>-0",
-- s = "<first seq> <epoch> <at_ns> <len(publisher)> <publisher><item hashes, 32 bytes each>".
-- Returns {'ok', updated_us}, {'fenced', epoch, holder, why}, {'moved', cursor_seq} or {'invalid', why}.
local channel, holder, epoch, prev, n, at = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local cpbase = 7 + n
local now = now_us()
local l = read_lock(KEYS[1])
if l.epoch ~= epoch or l.holder ~= holder then
  return {'fenced', str(l.epoch), l.holder, 'not the current lease'}
end
-- The topic lease is live only while the node lease it is held under is.
attach_node(l, KEYS[8])
if not is_live(l, now) then
  return {'fenced', str(l.epoch), l.holder, 'lease ended (released, or its node lease ended or lapsed)'}
end
local cur = num(redis.call('HGET', KEYS[2], 'seq'))
if cur ~= prev then
  return {'moved', str(cur)}
end
local last = num(redis.call('HGET', KEYS[5], 'last'))
local upto = prev + n
if upto > last then
  return {'invalid', 'seq ' .. str(upto) .. ' was never appended (last is ' .. str(last) .. ')'}
end
local sbase = cpbase + 2
local m = tonumber(ARGV[sbase]) or 0
local fused = ARGV[sbase + 2 * m + 2]
if fused and fused ~= '' then
  local e = redis.call('XRANGE', KEYS[11], str(upto) .. '-0', str(upto) .. '-0')
  if #e == 0 or string.sub(e[1][2][2], 1, #fused) ~= fused then
    return {'invalid', 'the entry at ' .. str(upto) .. ' is not the append the commit was sent with'}
  end
end
-- Every item must be in the queue at its seq with its hash: the hash index
-- maps the hash of every kept item to its seq.
local hs = {}
for i = 1, n do
  hs[i] = ARGV[6 + i]
end
local seqs = chunked('HMGET', KEYS[3], hs, 2000)
for i = 1, n do
  if tonumber(seqs[i]) ~= prev + i then
    return {'invalid', 'item ' .. str(prev + i) .. ' is not in the queue with hash ' .. tohex(hs[i])}
  end
end
redis.call('XADD', KEYS[4], str(upto) .. '-0', 's',
  str(prev + 1) .. ' ' .. str(epoch) .. ' ' .. at .. ' ' .. str(#holder) .. ' ' .. holder .. table.concat(hs))
redis.call('HSET', KEYS[2], 'seq', str(upto), 'hash', hs[n], 'epoch', str(epoch), 'updated_us', str(now))
local cpsize = ARGV[cpbase]
if cpsize and cpsize ~= '' then
  local top = redis.call('ZREVRANGE', KEYS[7], 0, 0, 'WITHSCORES')
  if #top == 0 or tonumber(top[2]) < tonumber(cpsize) then
    local cp = cjson.decode(ARGV[cpbase + 1])
    cp.at_us = str(now)
    redis.call('HSET', KEYS[6], cpsize, cjson.encode(cp))
    redis.call('ZADD', KEYS[7], cpsize, cpsize)
  end
end
-- The snapshot's moves, a command per kind for all of them: a call each
-- was most of the script's own time at many ids per commit. The ids are
-- distinct (the caller folds a commit's moves per id).
local rows, ids, gone = {}, {}, {}
for i = 1, m do
  local id, row = ARGV[sbase + 2 * i - 1], ARGV[sbase + 2 * i]
  if row == '' then
    gone[#gone + 1] = id
  else
    rows[#rows + 1] = id
    rows[#rows + 1] = row
    ids[#ids + 1] = 0
    ids[#ids + 1] = id
  end
end
chunked('HSET', KEYS[9], rows, 2000)
chunked('ZADD', KEYS[10], ids, 2000)
chunked('HDEL', KEYS[9], gone, 2000)
chunked('ZREM', KEYS[10], gone, 2000)
local carried = ARGV[sbase + 2 * m + 1]
if carried and carried ~= '' then
  redis.call('PUBLISH', channel, 'commit ' .. str(upto) .. ' ' .. carried)
else
  redis.call('PUBLISH', channel, 'commit ' .. str(upto))
end
return {'ok', str(now)}
