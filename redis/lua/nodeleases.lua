-- List the node leases not ended (read only).
-- KEYS: the set of node leases not ended
-- ARGV: prefix
-- Returns {now_us, then per node: node, epoch, acquired_us, expires_us, topic leases}.
local P = ARGV[1]
local out = {str(now_us())}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local nk = node_keys(P, node)
  local n = read_node(nk.lease)
  if n.epoch > 0 and not n.ended then
    append_all(out, {node, str(n.epoch), str(n.acquired), str(n.expires), redis.call('SCARD', nk.topics)})
  end
end
return out
