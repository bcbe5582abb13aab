-- Renew a live node lease, and so every topic lease under it, to now+ttl.
-- It writes the node's keys only and publishes nothing: an idle node costs
-- one script per renewal, whatever the number of its topics.
-- KEYS: the node-lease hash
-- ARGV: prefix (lib.lua, space), nodes channel, node, epoch, ttl_us
-- Returns {'ok', acquired_us, expires_us, now_us} or {'lost', why, topic...}
-- (the topics whose leases ended if it found the node lease lapsed).
local S, chan, node, epoch, ttl = space(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_us()
local nk = node_keys(S.P, node)
local n = read_node(nk.lease)
local lost = lost_reply(S, chan, node, nk, n, epoch, now)
if lost then
  return lost
end
local exp = now + ttl
redis.call('HSET', nk.lease, 'expires_us', str(exp))
redis.call('SET', nk.ttl, str(epoch), 'PX', str(math.ceil(ttl / 1000)))
return {'ok', str(n.acquired), str(exp), str(now)}
