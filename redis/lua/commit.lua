-- Publish items: move the cursor and append their ledger leaves, only under
-- the live lease (epoch, holder) and with the cursor at prev_seq.
-- KEYS: lock, cursor, hashes, ledger (stream), meta, checkpoints, cpsizes
-- ARGV: channel, holder, epoch, prev_seq, n, runs, then the n item hashes (seqs prev_seq+1..),
--       then runs pairs (count, at_ns; '' = now): the leaves in runs of one time, in order;
--       then checkpoint size and json ('' '' = none): stored if above every stored size.
-- Each run becomes one ledger segment (entry.go): entry id "<its last seq>-0",
-- s = "<first seq> <epoch> <at_ns> <len(publisher)> <publisher><item hashes, 32 bytes each>".
-- Returns {'ok', updated_us}, {'fenced', epoch, holder, why}, {'moved', cursor_seq} or {'invalid', why}.
local channel, holder, epoch, prev, n, runs = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cpbase = 7 + n + 2 * runs
local now = now_us()
local l = read_lock(KEYS[1])
if l.epoch ~= epoch or l.holder ~= holder then
  return {'fenced', str(l.epoch), l.holder, 'not the current lease'}
end
if not is_live(l, now) then
  return {'fenced', str(l.epoch), l.holder, 'lease ended'}
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
local now_ns = str(now) .. '000'
local pub = ' ' .. str(#holder) .. ' ' .. holder
local from, total = 1, 0
for r = 1, runs do
  total = total + (tonumber(ARGV[5 + n + 2 * r]) or 0)
end
if total ~= n then
  return {'invalid', 'leaf runs cover ' .. str(total) .. ' of ' .. str(n) .. ' leaves'}
end
for r = 1, runs do
  local cnt = tonumber(ARGV[5 + n + 2 * r])
  local t = ARGV[6 + n + 2 * r]
  if t == '' then t = now_ns end
  if cnt > 0 then
    local to = from + cnt - 1
    redis.call('XADD', KEYS[4], str(prev + to) .. '-0', 's',
      str(prev + from) .. ' ' .. str(epoch) .. ' ' .. t .. pub .. table.concat(hs, '', from, to))
    from = to + 1
  end
end
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
redis.call('PUBLISH', channel, 'commit ' .. str(upto))
return {'ok', str(now)}
