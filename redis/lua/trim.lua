-- Delete published items with seq < before, except the item at the cursor,
-- at most chunk of them per call, with their index entries.
-- KEYS: queue, msgids, hashes, cursor, meta
-- ARGV: before, chunk
-- Returns {deleted, more (0/1)}.
--
-- The trim mark (meta below) is exact: reads refuse seqs under it. An entry
-- holds one append's items, so it is deleted once all of them are under the
-- mark; until then the entry stays, and its trimmed items with it, unread.
local before, chunk = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur = num(redis.call('HGET', KEYS[4], 'seq'))
local below = num(redis.call('HGET', KEYS[5], 'below'))
if below < 1 then below = 1 end
local upto = math.min(before, cur) - 1
if upto < below then
  return {0, 0}
end
local stop = math.min(upto, below + chunk - 1)
local ms, hs = {}, {}
local from = below
while from <= stop do
  local es = redis.call('XRANGE', KEYS[1], str(from) .. '-0', '+', 'COUNT', 16)
  if #es == 0 then
    break
  end
  for _, e in ipairs(es) do
    each_record(e[2][2], function(seq, hash, msgid)
      if seq > stop then
        return true
      end
      if seq >= below then
        ms[#ms + 1] = msgid
        hs[#hs + 1] = hash
      end
      return false
    end)
    local id = e[1]
    from = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)) + 1
    if from > stop then
      break
    end
  end
end
chunked('HDEL', KEYS[2], ms, 2000)
chunked('HDEL', KEYS[3], hs, 2000)
local newbelow = stop + 1
redis.call('XTRIM', KEYS[1], 'MINID', str(newbelow) .. '-0')
redis.call('HSET', KEYS[5], 'below', str(newbelow))
local more = 0
if newbelow <= upto then more = 1 end
return {stop - below + 1, more}
