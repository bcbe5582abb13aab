-- Delete published items with seq < before, except the item at the cursor,
-- at most chunk of them per call, with their index entries.
-- KEYS: queue, msgids, hashes, cursor, meta
-- ARGV: before, chunk
-- Returns {deleted, more (0/1)}.
local before, chunk = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur = num(redis.call('HGET', KEYS[4], 'seq'))
local below = num(redis.call('HGET', KEYS[5], 'below'))
if below < 1 then below = 1 end
local upto = math.min(before, cur) - 1
if upto < below then
  return {0, 0}
end
local e = redis.call('XRANGE', KEYS[1], str(below) .. '-0', str(upto) .. '-0', 'COUNT', chunk)
local ms, hs = {}, {}
local newbelow = upto + 1
for _, entry in ipairs(e) do
  local h = entry[2][2]
  ms[#ms + 1] = entry_msgid(h)
  hs[#hs + 1] = string.sub(h, 1, 32)
end
if #e == chunk then
  local id = e[#e][1]
  newbelow = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)) + 1
end
chunked('HDEL', KEYS[2], ms, 2000)
chunked('HDEL', KEYS[3], hs, 2000)
redis.call('XTRIM', KEYS[1], 'MINID', str(newbelow) .. '-0')
redis.call('HSET', KEYS[5], 'below', str(newbelow))
local more = 0
if newbelow <= upto then more = 1 end
return {#e, more}
