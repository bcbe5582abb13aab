-- Start a node lease, ending a lapsed earlier one of the node.
-- KEYS: the node-lease hash (the script reaches the node's other keys, and
--       those of its topics, by name: lib.lua)
-- ARGV: prefix (lib.lua, space), nodes channel, node, ttl_us
-- Returns {'ok', epoch, acquired_us, expires_us, topic...} (the topics whose
-- leases ended with a lapsed earlier node lease) or {'held', epoch, remaining_us}.
local S, chan, node, ttl = space(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = now_us()
local nk = node_keys(S.P, node)
local n = read_node(nk.lease)
if node_live(n, now) then
  return {'held', str(n.epoch), str(n.expires - now)}
end
local _, ended = end_lapsed(S, chan, node, nk, n, now)
local epoch = n.epoch + 1
local exp = now + ttl
redis.call('HSET', nk.lease, 'epoch', str(epoch), 'ended', '0', 'acquired_us', str(now), 'expires_us', str(exp))
-- The ttl key lives as long as the node lease: its expiry raises a keyspace
-- event that wakes the standbys.
redis.call('SET', nk.ttl, str(epoch), 'PX', str(math.ceil(ttl / 1000)))
redis.call('SADD', nk.all, node)
publish_node(chan, 'acquired', node, epoch, {})
return append_all({'ok', str(epoch), str(now), str(exp)}, ended)
