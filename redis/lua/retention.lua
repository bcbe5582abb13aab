-- Set a topic's retention (baton.Lifecycle), if the topic exists: it has a
-- meta hash or a lock, and no tombstone (deletetopic.lua).
-- KEYS: retention, meta, lock
-- ARGV: channel, items, age_ns
-- Returns {'ok'} or {'unknown'}.
if redis.call('HEXISTS', KEYS[2], 'deleted') == 1 or
  (redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[3]) == 0) then
  return {'unknown'}
end
redis.call('HSET', KEYS[1], 'items', ARGV[2], 'age_ns', ARGV[3])
redis.call('PUBLISH', ARGV[1], 'lock retention')
return {'ok'}
