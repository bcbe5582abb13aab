-- Acquire the publish lock of a topic.
-- KEYS: lock, cursor, releases, lease
-- ARGV: topic, channel, holder, ttl_us
-- Returns {'ok', epoch, acquired_us, expires_us} or {'held', holder, epoch, remaining_us}.
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, holder, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = now_us()
local l = read_lock(lk.lock)
if is_live(l, now) then
  return {'held', l.holder, str(l.epoch), str(l.expires - now)}
end
settle(lk, topic, channel, l, now)
local prev = l.epoch
local epoch = prev + 1
local exp = now + ttl
redis.call('HSET', lk.lock, 'holder', holder, 'epoch', str(epoch), 'acquired_us', str(now),
  'expires_us', str(exp), 'recorded_epoch', str(prev))
-- The lease key lives exactly as long as the lease: its expiry raises a
-- keyspace event that wakes the standbys.
redis.call('SET', KEYS[4], str(epoch), 'PX', str(math.ceil(ttl / 1000)))
if prev > 0 then
  local head = redis.call('LINDEX', lk.releases, 0)
  if head then
    local rec = cjson.decode(head)
    if rec.epoch == str(prev) then
      rec.successor = holder
      rec.successor_epoch = str(epoch)
      rec.successor_us = str(now)
      redis.call('LSET', lk.releases, 0, cjson.encode(rec))
    end
  end
end
redis.call('PUBLISH', channel, 'lock acquired ' .. str(epoch) .. ' ' .. holder)
return {'ok', str(epoch), str(now), str(exp)}
