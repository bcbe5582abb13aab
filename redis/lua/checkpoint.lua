-- Store a signed ledger checkpoint, only under the live lease (epoch, holder)
-- with its node lease live, not beyond the cursor and above every stored
-- checkpoint's size.
-- KEYS: lock, cursor, checkpoints (hash size -> json), cpsizes (sorted set), the holder's node-lease hash
-- ARGV: holder, epoch, size, checkpoint json (the script stamps at_us), the
-- topic's events channel (it publishes 'checkpoint <size>' there)
-- Returns {'ok'}, {'fenced', epoch, holder, why} or {'invalid', why}.
local holder, epoch, size = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_us()
local l = read_lock(KEYS[1])
if l.epoch ~= epoch or l.holder ~= holder then
  return {'fenced', str(l.epoch), l.holder, 'not the current lease'}
end
-- The topic lease is live only while the node lease it is held under is.
attach_node(l, KEYS[5])
if not is_live(l, now) then
  return {'fenced', str(l.epoch), l.holder, 'lease ended (released, or its node lease ended or lapsed)'}
end
local cur = num(redis.call('HGET', KEYS[2], 'seq'))
if size > cur then
  return {'invalid', str(size) .. ' is beyond the cursor ' .. str(cur)}
end
local top = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if #top > 0 and tonumber(top[2]) >= size then
  return {'invalid', str(size) .. ' is not above the latest checkpoint\'s ' .. top[1]}
end
local cp = cjson.decode(ARGV[4])
cp.at_us = str(now)
redis.call('HSET', KEYS[3], str(size), cjson.encode(cp))
redis.call('ZADD', KEYS[4], str(size), str(size))
redis.call('PUBLISH', ARGV[5], 'checkpoint ' .. str(size))
return {'ok'}
