-- Read a topic's lock as Lock reports it (read only).
-- KEYS: lock
-- ARGV: key space (lib.lua, space)
-- Returns {holder, epoch, node_epoch, acquired_us, expires_us, live (0|1), now_us}:
-- expires_us is the node lease's while the lease is unrecorded.
local now = now_us()
local l = read_lease(space(ARGV[1]), KEYS[1])
local live = 0
if is_live(l, now) then
  live = 1
end
return {l.holder, str(l.epoch), str(l.node_epoch), str(l.acquired), str(l.expires), live, str(now)}
