-- Append a batch of updates to a topic's queue: all or none.
-- KEYS: queue (stream), msgids (hash msg_id -> seq), hashes (hash item hash -> seq), meta (hash: last, below)
-- ARGV: channel, n, then n msg ids, then their n hashes, then their n h fields, then their n values.
--   The msg ids are distinct (the caller folds repeats within a batch). An entry is
--   h = "<hash> <ingested_us> <len(msg_id)> <msg_id><id>", v = value (entry.go).
-- Returns {last, then 3 values per duplicate: its index (1-based), its seq, its stored hash}.
-- The other updates are fresh: they take the seqs after last, in order.
--
-- Everything is read and every seq assigned before the first write, so an
-- error cannot leave half a batch. The blocks of ARGV are laid out so that
-- the index calls take them as they are (unpack), with no table per item.
local channel, n = ARGV[1], tonumber(ARGV[2])
local M, H, E, V = 2, 2 + n, 2 + 2 * n, 2 + 3 * n -- ARGV[M + i] is msg id i, and so on
local last = num(redis.call('HGET', KEYS[4], 'last'))
local known = {}
for i = 1, n, 2000 do
  local j = math.min(i + 1999, n)
  local r = redis.call('HMGET', KEYS[2], unpack(ARGV, M + i, M + j))
  for k = 1, #r do
    if r[k] then
      known[i + k - 1] = r[k]
    end
  end
end
local out = {str(last)}
if next(known) ~= nil then
  for i = 1, n do
    local k = known[i]
    if k then
      out[#out + 1] = i
      out[#out + 1] = k
      out[#out + 1] = entry_hash(redis.call('XRANGE', KEYS[1], k .. '-0', k .. '-0'))
    end
  end
end
local mi, hi = {}, {}
local seq = last
for i = 1, n do
  if not known[i] then
    seq = seq + 1
    local s = str(seq)
    redis.call('XADD', KEYS[1], s, 'h', ARGV[E + i], 'v', ARGV[V + i])
    local m = #mi
    mi[m + 1] = ARGV[M + i]
    mi[m + 2] = s
    hi[m + 1] = ARGV[H + i]
    hi[m + 2] = s
  end
end
if seq > last then
  chunked('HSET', KEYS[2], mi, 2000)
  chunked('HSET', KEYS[3], hi, 2000)
  redis.call('HSET', KEYS[4], 'last', str(seq))
  redis.call('PUBLISH', channel, 'append ' .. str(seq))
end
return out
