-- Put a topic in the topics set, unless it is deleted (deletetopic.lua),
-- when it takes it out: what an Acquire does after its script, so that an
-- elector racing a delete never lists the deleted topic again.
-- KEYS: topics set, meta
-- ARGV: topic
-- Returns {'ok', 1} if the topic was added, else {'ok', 0}.
if redis.call('HEXISTS', KEYS[2], 'deleted') == 1 then
  redis.call('SREM', KEYS[1], ARGV[1])
  return {'ok', 0}
end
return {'ok', redis.call('SADD', KEYS[1], ARGV[1])}
