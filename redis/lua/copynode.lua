-- Redis Cluster: push a node lease into a bucket's copy of it (doc.go,
-- "Cluster"), after the node lease was started or renewed on {_nodes}.
-- KEYS: the bucket's copy of the node lease
-- ARGV: key space (lib.lua, space: with the bucket's tag), nodes channel,
--       node, epoch, expires_us (the node lease's, as {_nodes} set it),
--       remaining_us (what is left of its ttl, measured by the caller from
--       before it ran the {_nodes} script)
-- Returns {'ok', live_us, record_json...} (the records of the topics of an
-- earlier epoch's copy that this one ends) or {'stale', why}: the copy is at
-- a later epoch, or this one ended, and is left as it is.
--
-- The copy keeps expires_us, which Lock and the records report, and is live
-- until live_us = max(expires_us, now + remaining_us) by this master's
-- clock: never before the holder stops trusting its node lease (it does so
-- remaining_us after it sent the {_nodes} script, at the latest), whatever
-- the skew between the two masters' clocks. A copy is never revived once
-- ended, nor taken back to an earlier epoch, nor are the topic leases of a
-- copy that lapsed. Within its epoch it takes the latest push, shorter or
-- longer, as the node lease does on {_nodes}.
local S, chan, node, epoch = space(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local exp, rem = tonumber(ARGV[5]), tonumber(ARGV[6])
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
elseif n.epoch == epoch and not n.ended and n.live <= now then
  -- This epoch's copy lapsed here (pushes went missing for longer than the
  -- holder's margin): its topic leases ended then and stay ended, one
  -- record each, as a lapsed node lease's do on one server; the node goes
  -- on in this bucket with new topic leases.
  recs = end_node(S, chan, node, nk, n, 'expired', math.min(n.expires, now))
end
local live = math.max(exp, now + rem)
redis.call('HSET', nk.lease, 'epoch', str(epoch), 'ended', '0', 'expires_us', str(exp), 'live_us', str(live))
return append_all({'ok', str(live)}, recs)
