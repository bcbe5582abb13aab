-- Take a deleted topic out of the topics set again, if it is still
-- deleted: an Acquire that raced its delete added it (register runs before
-- the acquire script) and the acquire script refused it.
-- KEYS: topics set, meta
-- ARGV: topic
if redis.call('HEXISTS', KEYS[2], 'deleted') == 1 then
  redis.call('SREM', KEYS[1], ARGV[1])
end
return {'ok'}
