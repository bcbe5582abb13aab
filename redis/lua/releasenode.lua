-- End a live node lease now, and every topic lease under it with reason.
-- KEYS: the node-lease hash
-- ARGV: prefix, nodes channel, node, epoch, reason
-- Returns {'ok', record_json...} or {'lost', why, topic...} (the topics whose
-- leases ended if it found the node lease lapsed).
local P, chan, node, epoch, reason = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_us()
local nk = node_keys(P, node)
local n = read_node(nk.lease)
local lost = lost_reply(P, chan, node, nk, n, epoch, now)
if lost then
  return lost
end
local recs = end_node(P, chan, node, nk, n, reason, now)
return append_all({'ok'}, recs)
