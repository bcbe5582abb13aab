-- Redis Cluster: end a bucket's copy of a node lease that ended (or lapsed)
-- on {_nodes} (doc.go, "Cluster"): the record of every topic lease held
-- under it in the bucket, written once (recorded_epoch), and a tombstone of
-- the epoch, so that a late push of it (copynode) cannot revive it.
-- KEYS: the bucket's copy of the node lease
-- ARGV: key space (lib.lua, space: with the bucket's tag), nodes channel,
--       node, epoch, reason
-- Returns {'ok', record_json...}.
local S, chan, node, epoch, reason = space(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_us()
local nk = holder_keys(S, node)
local n = read_node(nk.lease)
if n.epoch > epoch then
  return {'ok'}
end
local recs = {}
if n.epoch > 0 and not n.ended then
  if n.epoch < epoch or n.live <= now then
    -- An earlier epoch, or lapsed here already: its leases expired.
    recs = end_node(S, chan, node, nk, n, 'expired', math.min(n.expires, now))
  else
    recs = end_node(S, chan, node, nk, n, reason, now)
  end
end
redis.call('HSET', nk.lease, 'epoch', str(epoch), 'ended', '1')
return append_all({'ok'}, recs)
