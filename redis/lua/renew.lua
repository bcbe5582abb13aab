-- Renew a live lease to now+ttl.
-- KEYS: lock, cursor, releases, lease
-- ARGV: topic, channel, holder, epoch, ttl_us
-- Returns {'ok', acquired_us, expires_us, now_us} or {'lost', epoch, holder, why}.
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, holder, epoch, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
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
local exp = now + ttl
redis.call('HSET', lk.lock, 'expires_us', str(exp))
redis.call('SET', KEYS[4], str(epoch), 'PX', str(math.ceil(ttl / 1000)))
return {'ok', str(l.acquired), str(exp), str(now)}
