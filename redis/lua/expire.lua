-- Write the release record of a topic lease whose node lease lapsed.
-- KEYS: lock, cursor, releases
-- ARGV: topic, channel, key space (lib.lua, space)
-- Returns {'ok', record_json}, {'held', holder, epoch, remaining_us} or {'notfound'}.
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, S = ARGV[1], ARGV[2], space(ARGV[3])
local now = now_us()
local l = read_lease(S, lk.lock)
if is_live(l, now) then
  return {'held', l.holder, str(l.epoch), str(l.expires - now)}
end
if is_lapsed(l, now) then
  return {'ok', record(lk, S, topic, channel, l, 'expired', l.expires)}
end
return {'notfound'}
