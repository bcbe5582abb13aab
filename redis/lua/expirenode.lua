-- End a node lease that lapsed without being ended: the expired record of
-- every topic lease under it, in one step.
-- KEYS: the node-lease hash
-- ARGV: prefix, nodes channel, node
-- Returns {'ok', record_json...}, {'held', epoch, remaining_us} or {'notfound'}.
local P, chan, node = ARGV[1], ARGV[2], ARGV[3]
local now = now_us()
local nk = node_keys(P, node)
local n = read_node(nk.lease)
if node_live(n, now) then
  return {'held', str(n.epoch), str(n.expires - now)}
end
local recs, _, ok = end_lapsed(P, chan, node, nk, n, now)
if not ok then
  return {'notfound'}
end
return append_all({'ok'}, recs)
