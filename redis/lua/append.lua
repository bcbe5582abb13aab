-- Append a batch of updates to a topic's queue: all or none.
-- KEYS: queue (stream), msgids (hash msg_id -> seq), hashes (hash item hash -> seq), meta (hash: last, below)
-- ARGV: channel, n, then n times: msg_id, id, value, hash
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
      local h = ''
      local e = redis.call('XRANGE', KEYS[1], s .. '-0', s .. '-0')
      if e[1] then
        local f = e[1][2]
        for j = 1, #f, 2 do
          if f[j] == 'hash' then h = f[j + 1] end
        end
      end
      p = {s, h}
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
    seen[msgid] = {s, ARGV[b + 3]}
    fresh[#fresh + 1] = b
    fresh[#fresh + 1] = s
    out[#out + 1] = s
    out[#out + 1] = 0
    out[#out + 1] = ''
  end
end
if #fresh > 0 then
  local now = str(now_us())
  local mi, hi = {}, {}
  for i = 1, #fresh, 2 do
    local b, s = fresh[i], fresh[i + 1]
    redis.call('XADD', KEYS[1], s .. '-0', 'id', ARGV[b + 1], 'value', ARGV[b + 2], 'msg_id', ARGV[b],
      'hash', ARGV[b + 3], 'ingested_us', now)
    mi[#mi + 1] = ARGV[b]
    mi[#mi + 1] = s
    hi[#hi + 1] = ARGV[b + 3]
    hi[#hi + 1] = s
  end
  chunked('HSET', KEYS[2], mi, 2000)
  chunked('HSET', KEYS[3], hi, 2000)
  redis.call('HSET', KEYS[4], 'last', str(seq))
  redis.call('PUBLISH', channel, 'append ' .. str(seq))
end
return out
