-- Delete a topic (baton.Lifecycle, docs/design.md "Topic lifecycle"), in one
-- script: its queue, msg id and hash indexes, release records and retention
-- go; its lease, if live, ends without a record (the lock keeps its epoch,
-- recorded, so the holder's next commit is fenced and no epoch repeats); it
-- leaves the topics set. The meta hash keeps the tombstone: deleted = 1 and
-- resume, the seq the queue continues after when append.lua brings the
-- topic back. With the ledger kept, the cursor (its head), the ledger and
-- the checkpoints stay; with drop_ledger they go and resume is 0.
-- KEYS: lock, cursor, releases, queue, msgids, hashes, meta, ledger, checkpoints, cpsizes, retention, topics set
-- ARGV: topic, channel, topics channel, prefix, drop_ledger (0/1)
-- Returns {'ok', items, unpublished, epoch, ledger_size} or {'unknown'}.
local topic, channel, tchannel, P, drop = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local meta = KEYS[7]
if redis.call('HEXISTS', meta, 'deleted') == 1 or
  (redis.call('EXISTS', meta) == 0 and redis.call('EXISTS', KEYS[1]) == 0) then
  return {'unknown'}
end
local now = now_us()
local l = read_lease(P, KEYS[1])
if l.epoch > l.recorded then
  -- Live or lapsed without a record: it ends here, recorded by no record.
  redis.call('HSET', KEYS[1], 'recorded_epoch', str(l.epoch), 'expires_us', str(math.min(l.expires, now)))
  redis.call('SREM', node_keys(P, l.holder).topics, topic)
end
local cur = num(redis.call('HGET', KEYS[2], 'seq'))
local m = redis.call('HMGET', meta, 'last', 'below')
local last, below = num(m[1]), math.max(num(m[2]), 1)
local items, unpublished = math.max(last - below + 1, 0), math.max(last - math.max(cur, below - 1), 0)
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6], meta, KEYS[11])
if drop then
  redis.call('DEL', KEYS[2], KEYS[8], KEYS[9], KEYS[10])
  cur = 0
end
redis.call('HSET', meta, 'deleted', '1', 'resume', str(cur))
redis.call('SREM', KEYS[12], topic)
redis.call('PUBLISH', channel, 'deleted')
redis.call('PUBLISH', tchannel, topic)
return {'ok', str(items), str(unpublished), str(l.epoch), str(cur)}
