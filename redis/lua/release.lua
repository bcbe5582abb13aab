-- End a live lease now, writing its release record.
-- KEYS: lock, cursor, releases, lease
-- ARGV: topic, channel, holder, epoch, reason
-- Returns {'ok', record_json} or {'lost', epoch, holder, why}.
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, holder, epoch, reason = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_us()
local l = read_lock(lk.lock)
local lapsed = settle(lk, topic, channel, l, now)
if l.epoch ~= epoch or l.holder ~= holder then
  return {'lost', str(l.epoch), l.holder, 'superseded'}
end
if not is_live(l, now) then
  if lapsed then
    return {'lost', str(l.epoch), l.holder, 'expired'}
  end
  return {'lost', str(l.epoch), l.holder, 'ended'}
end
local js = record(lk, topic, channel, l, reason, now)
redis.call('HSET', lk.lock, 'expires_us', str(now))
redis.call('DEL', KEYS[4])
return {'ok', js}
