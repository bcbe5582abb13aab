-- Record a member as live until now+ttl, and drop members that lapsed.
-- KEYS: nodes (hash node -> json), expiry (sorted set node by expires_us),
--       keys (set of "node base64key", every public key ever registered)
-- ARGV: node, member_json, ttl_us, key entry ('' if none)
local node, ttl = ARGV[1], tonumber(ARGV[3])
local now = now_us()
local m = cjson.decode(ARGV[2])
m.heartbeat_us = str(now)
m.expires_us = str(now + ttl)
redis.call('HSET', KEYS[1], node, cjson.encode(m))
redis.call('ZADD', KEYS[2], str(now + ttl), node)
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[4])
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', str(now), 'LIMIT', 0, 100)
if #gone > 0 then
  chunked('HDEL', KEYS[1], gone, 2000)
  chunked('ZREM', KEYS[2], gone, 2000)
end
return str(now)
