-- Append a batch of updates to a topic's queue: all or none.
-- KEYS: queue (stream), msgids (hash msg_id -> seq), hashes (hash item hash -> seq), meta (hash: last, below)
-- ARGV: channel, n, then n times: msg_id, hash, tail, value
--   tail is "<len(msg_id)> <msg_id><id>"; the entry is h = "<hash> <now_us> <tail>", v = value
--   (see entry.go).
-- Returns 3 values per update: seq, duplicate (0/1), hash (original hash of a duplicate, else '').
--
-- Everything is read and every seq assigned before the first write, so an
-- error cannot leave half a batch.
local channel, n = ARGV[1], tonumber(ARGV[2])
local last = num(redis.call('HGET', KEYS[4], 'last'))
local seq = last
-- One HMGET for every msg id of the batch.
local ids = {}
for i = 1, n do
  ids[i] = ARGV[3 + (i - 1) * 4]
end
local known = chunked('HMGET', KEYS[2], ids, 2000)
local seen = {}
local fresh = {}
local out = {}
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local msgid = ARGV[b]
  local p = seen[msgid]
  if not p then
    local s = known[i]
    if s then
      p = {s, entry_hash(redis.call('XRANGE', KEYS[1], s .. '-0', s .. '-0'))}
      seen[msgid] = p
    end
  end
  if p then
    out[#out + 1] = p[1]
    out[#out + 1] = 1
    out[#out + 1] = p[2]
  else
    seq = seq + 1
    local s = str(seq)
    seen[msgid] = {s, ARGV[b + 1]}
    fresh[#fresh + 1] = b
    fresh[#fresh + 1] = s
    out[#out + 1] = s
    out[#out + 1] = 0
    out[#out + 1] = ''
  end
end
if #fresh > 0 then
  local now = ' ' .. str(now_us()) .. ' '
  local mi, hi = {}, {}
  for i = 1, #fresh, 2 do
    local b, s = fresh[i], fresh[i + 1]
    redis.call('XADD', KEYS[1], s .. '-0', 'h', ARGV[b + 1] .. now .. ARGV[b + 2], 'v', ARGV[b + 3])
    mi[#mi + 1] = ARGV[b]
    mi[#mi + 1] = s
    hi[#hi + 1] = ARGV[b + 1]
    hi[#hi + 1] = s
  end
  chunked('HSET', KEYS[2], mi, 2000)
  chunked('HSET', KEYS[3], hi, 2000)
  redis.call('HSET', KEYS[4], 'last', str(seq))
  redis.call('PUBLISH', channel, 'append ' .. str(seq))
end
return out
