-- End a node lease that lapsed without being ended: the expired record of
-- every topic lease under it, in one step.
-- KEYS: the node-lease hash
-- ARGV: prefix (lib.lua, space), nodes channel, node
-- Returns {'ok', epoch, record_json...}, {'held', epoch, remaining_us} or
-- {'notfound', epoch} (epoch: the node lease's latest, 0 if none).
local S, chan, node = space(ARGV[1]), ARGV[2], ARGV[3]
local now = now_us()
local nk = node_keys(S.P, node)
local n = read_node(nk.lease)
if node_live(n, now) then
  return {'held', str(n.epoch), str(n.expires - now)}
end
local recs, _, ok = end_lapsed(S, chan, node, nk, n, now)
if not ok then
  return {'notfound', str(n.epoch)}
end
return append_all({'ok', str(n.epoch)}, recs)
