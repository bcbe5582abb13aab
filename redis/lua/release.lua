-- End a live topic lease now, writing its release record; its node lease
-- goes on.
-- KEYS: lock, cursor, releases
-- ARGV: topic, channel, key space (lib.lua, space), holder, epoch, reason
-- Returns {'ok', record_json} or {'lost', epoch, holder, why}.
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, S, holder, epoch, reason = ARGV[1], ARGV[2], space(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
local now = now_us()
local l = read_lease(S, lk.lock)
local lapsed = settle(lk, S, topic, channel, l, now)
if l.epoch ~= epoch or l.holder ~= holder then
  return {'lost', str(l.epoch), l.holder, 'superseded'}
end
if not is_live(l, now) then
  if lapsed then
    return {'lost', str(l.epoch), l.holder, 'expired'}
  end
  return {'lost', str(l.epoch), l.holder, 'ended'}
end
return {'ok', record(lk, S, topic, channel, l, reason, now)}
