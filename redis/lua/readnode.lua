-- Read a node lease and the server's clock (read only).
-- KEYS: the node-lease hash
-- Returns {epoch, ended (0|1), expires_us, now_us}.
local n = read_node(KEYS[1])
local ended = 0
if n.ended then
  ended = 1
end
return {str(n.epoch), ended, str(n.expires), str(now_us())}
