-- Delete a topic (baton.Lifecycle, docs/design.md "Topic lifecycle"), in one
-- script: its queue, msg id and hash indexes and retention go; its lease,
-- if live, ends with a 'deleted' record (the lock keeps its epoch, recorded,
-- so the holder's next commit is fenced and no epoch repeats); it leaves the
-- topics set. The meta hash keeps the tombstone: deleted = 1 and
-- resume, the seq the queue continues after when append.lua brings the
-- topic back. With the ledger kept, the cursor (its head), the ledger, the
-- checkpoints and the release records (who held each epoch of its leaves)
-- stay; with drop_ledger they go and resume is 0.
-- KEYS: lock, cursor, releases, queue, msgids, hashes, meta, ledger, checkpoints, cpsizes, retention, topics set,
--   snapshot rows, snapshot ids (snapshot.go: they go whatever drop_ledger says)
-- ARGV: topic, channel, topics channel, key space (lib.lua, space), drop_ledger (0/1),
--   unlist (0/1: take it out of the topics set here; on Redis Cluster the
--   set is in another slot, KEYS[12] is the meta hash again and the caller
--   takes it out)
-- Returns {'ok', items, unpublished, epoch, ledger_size} or {'unknown'}.
local topic, channel, tchannel, S, drop = ARGV[1], ARGV[2], ARGV[3], space(ARGV[4]), ARGV[5] == '1'
local meta = KEYS[7]
if redis.call('HEXISTS', meta, 'deleted') == 1 or
  (redis.call('EXISTS', meta) == 0 and redis.call('EXISTS', KEYS[1]) == 0) then
  return {'unknown'}
end
local now = now_us()
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local l = read_lease(S, lk.lock)
-- A lease not yet recorded ends here, with its one record: the delete's if
-- it was live, its expiry's if it had lapsed.
if is_live(l, now) then
  record(lk, S, topic, channel, l, 'deleted', now)
else
  settle(lk, S, topic, channel, l, now)
end
local cur = num(redis.call('HGET', KEYS[2], 'seq'))
local m = redis.call('HMGET', meta, 'last', 'below')
local last, below = num(m[1]), math.max(num(m[2]), 1)
local items, unpublished = math.max(last - below + 1, 0), math.max(last - math.max(cur, below - 1), 0)
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], meta, KEYS[11], KEYS[13], KEYS[14])
if drop then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[8], KEYS[9], KEYS[10])
  cur = 0
end
redis.call('HSET', meta, 'deleted', '1', 'resume', str(cur))
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[12], topic)
end
redis.call('PUBLISH', channel, 'deleted')
redis.call('PUBLISH', tchannel, topic)
return {'ok', str(items), str(unpublished), str(l.epoch), str(cur)}
