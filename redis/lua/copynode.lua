-- Redis Cluster: push a node lease into a bucket's copy of it (doc.go,
-- "Cluster"), after the node lease was started or renewed on {_nodes}.
-- KEYS: the bucket's copy of the node lease
-- ARGV: key space (lib.lua, space: with the bucket's tag), nodes channel,
--       node, epoch, remaining_us (what is left of the node lease's ttl,
--       measured by the caller from before it ran the {_nodes} script)
-- Returns {'ok', expires_us, record_json...} (the records of the topics of
-- an earlier epoch's copy that this one ends) or {'stale', why}: the copy
-- is at a later epoch, or this one ended, and is left as it is.
--
-- The copy never moves backwards within its epoch and is never revived once
-- ended: a late or repeated push cannot lengthen what an end cut short.
local S, chan, node, epoch, rem = space(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_us()
local nk = holder_keys(S, node)
local n = read_node(nk.lease)
if n.epoch > epoch then
  return {'stale', 'the copy is at epoch ' .. str(n.epoch)}
end
if n.epoch == epoch and n.ended then
  return {'stale', 'the node lease ended'}
end
local recs = {}
if n.epoch < epoch and n.epoch > 0 and not n.ended then
  -- An earlier node lease of the node: it ended on {_nodes} before this
  -- one began, so its topic leases in this bucket end now, as expired.
  recs = end_node(S, chan, node, nk, n, 'expired', math.min(n.expires, now))
end
local exp = now + rem
if n.epoch == epoch then
  exp = math.max(exp, n.expires)
end
redis.call('HSET', nk.lease, 'epoch', str(epoch), 'ended', '0', 'expires_us', str(exp))
return append_all({'ok', str(exp)}, recs)
