-- Append a batch of updates to a topic's queue: all or none.
-- KEYS: queue (stream), msgids (hash msg_id -> seq), hashes (hash item hash -> seq), meta (hash: last, below)
-- ARGV: channel, n, then n times: msg_id, hash, tail, value
--   tail is "<len(msg_id)> <msg_id><id>"; the entry is h = "<hash> <now_us> <tail>", v = value
--   (see entry.go).
-- Returns {last, then 3 values per duplicate: its index (1-based), its seq, its original hash}.
-- The other updates are fresh: they take the seqs after last, in order.
--
-- Everything is read and every seq assigned before the first write, so an
-- error cannot leave half a batch.
local channel, n = ARGV[1], tonumber(ARGV[2])
local last = num(redis.call('HGET', KEYS[4], 'last'))
-- One HMGET for every msg id of the batch.
local ids = {}
for i = 1, n do
  ids[i] = ARGV[3 + (i - 1) * 4]
end
local known = chunked('HMGET', KEYS[2], ids, 2000)
local out = {str(last)}
local seq = last
local fseq, farg = {}, {} -- msg id -> seq and argument index, of the batch's fresh updates
local stored = {}         -- msg id -> {seq, hash}, of updates already in the queue
local fresh = {}          -- argument index of each fresh update, in seq order
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local msgid = ARGV[b]
  local s = fseq[msgid]
  if s then
    out[#out + 1] = i
    out[#out + 1] = str(s)
    out[#out + 1] = ARGV[farg[msgid] + 1]
  else
    local k = stored[msgid]
    if not k and known[i] then
      k = {known[i], entry_hash(redis.call('XRANGE', KEYS[1], known[i] .. '-0', known[i] .. '-0'))}
      stored[msgid] = k
    end
    if k then
      out[#out + 1] = i
      out[#out + 1] = k[1]
      out[#out + 1] = k[2]
    else
      seq = seq + 1
      fseq[msgid] = seq
      farg[msgid] = b
      fresh[#fresh + 1] = b
    end
  end
end
if #fresh > 0 then
  local now = ' ' .. str(now_us()) .. ' '
  local mi, hi = {}, {}
  for j, b in ipairs(fresh) do
    local s = str(last + j)
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
