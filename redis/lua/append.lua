-- Append a batch of updates to a topic's queue: all or none.
-- KEYS: queue (stream), msgids (hash msg_id -> seq), hashes (hash item hash -> seq), meta (hash: last, below),
--   the lock (hash)
-- ARGV: channel, n, then the n msg ids, then their n hashes, then the entry's body:
--   "<ingested_us> " and the n records (lib.lua, entry.go), then the appending Store's
--   origin, which the message names ("append <last seq> <origin>": its own listener
--   skips it, notify.go), then the holder and epoch of the lease under which the
--   topic's publisher runs in the appending process ('' and 0: none). The msg ids are
--   distinct (the caller folds repeats within a batch).
-- The message is not published while the lock is that lease: the one publisher it
-- could wake is in the appending process, which wakes it itself (fused.go, localPublisher).
-- Returns {'ok', last, revived}: the updates took the seqs after last, in order, as one entry
-- (revived: '1' if the topic had been deleted);
-- or {'dup', then 3 values per update already in the queue: its index (1-based), its
-- seq, its stored hash}, and nothing is written: the caller sends the others again.
--
-- Everything is read before the first write, so an error cannot leave half a
-- batch. Per item the script only creates the two index entries: the items
-- go in as one stream entry whose body the node built.
local channel, n = ARGV[1], tonumber(ARGV[2])
local M, H = 2, 2 + n -- ARGV[M + i] is msg id i, ARGV[H + i] its hash
local dup = {'dup'}
local hash_at = hash_finder(KEYS[1])
for i = 1, n, 2000 do
  local j = math.min(i + 1999, n)
  local r = redis.call('HMGET', KEYS[2], unpack(ARGV, M + i, M + j))
  for k = 1, #r do
    if r[k] then
      dup[#dup + 1] = i + k - 1
      dup[#dup + 1] = r[k]
      dup[#dup + 1] = hash_at(tonumber(r[k]))
    end
  end
end
if #dup > 1 then
  return dup
end
-- A deleted topic comes back (deletetopic.lua): its queue continues after
-- the kept ledger's head.
local revived = '0'
if redis.call('HEXISTS', KEYS[4], 'deleted') == 1 then
  local r = num(redis.call('HGET', KEYS[4], 'resume'))
  redis.call('HSET', KEYS[4], 'last', str(r), 'below', str(r + 1))
  redis.call('HDEL', KEYS[4], 'deleted', 'resume')
  revived = '1'
end
local last = num(redis.call('HGET', KEYS[4], 'last'))
local mi, hi = {}, {}
for i = 1, n do
  local s = str(last + i)
  mi[2 * i - 1] = ARGV[M + i]
  mi[2 * i] = s
  hi[2 * i - 1] = ARGV[H + i]
  hi[2 * i] = s
end
local upto = str(last + n)
redis.call('XADD', KEYS[1], upto, 'b', str(last + 1) .. ' ' .. ARGV[3 + 2 * n])
chunked('HSET', KEYS[2], mi, 2000)
chunked('HSET', KEYS[3], hi, 2000)
redis.call('HSET', KEYS[4], 'last', upto)
local qholder, qepoch = ARGV[5 + 2 * n] or '', ARGV[6 + 2 * n] or '0'
local quiet = false
if qholder ~= '' then
  local l = redis.call('HMGET', KEYS[5], 'holder', 'epoch')
  quiet = l[1] == qholder and l[2] == qepoch
end
if not quiet then
  redis.call('PUBLISH', channel, 'append ' .. upto .. ' ' .. (ARGV[4 + 2 * n] or ''))
end
return {'ok', str(last), revived}
