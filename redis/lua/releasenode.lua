-- End a live node lease now, and every topic lease under it with reason.
-- KEYS: the node-lease hash
-- ARGV: prefix (lib.lua, space), nodes channel, node, epoch, reason
-- Returns {'ok', record_json...} or {'lost', why, topic...} (the topics whose
-- leases ended if it found the node lease lapsed).
local S, chan, node, epoch, reason = space(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_us()
local nk = node_keys(S.P, node)
local n = read_node(nk.lease)
local lost = lost_reply(S, chan, node, nk, n, epoch, now)
if lost then
  return lost
end
local recs = end_node(S, chan, node, nk, n, reason, now)
return append_all({'ok'}, recs)
