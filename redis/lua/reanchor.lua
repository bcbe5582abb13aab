-- Append a ledger re-anchor record (baton.Reanchors) and wake the topic's
-- witnesses with a commit signal.
-- KEYS: reanchors (list of base64 notes)
-- ARGV: note (base64), max records, channel
-- Returns {'ok'} or {'full'}.
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  return {'full'}
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], 'commit reanchor')
return {'ok'}
