-- Acquire the publish lock of a topic under a live node lease.
-- KEYS: lock, cursor, releases, meta, queue, hashes (of the topic)
-- ARGV: topic, channel, key space (lib.lua, space), node, node_epoch, n
-- Returns {'ok', epoch, acquired_us, expires_us, cursor seq, hash, epoch, updated_us,
-- checked (0|1), asked, entries, next entry} (baton.Resume: whether the
-- cursor's hash is in the index at its seq, and the queue's entries holding
-- the n seqs after it, read as Items reads them, unless trimmed: asked 0),
-- {'held', holder, epoch, remaining_us}
-- {'lost', node_epoch, why}: the node lease is not live, or {'deleted'} (deletetopic.lua).
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, S, node, nepoch = ARGV[1], ARGV[2], space(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local now = now_us()
-- The node lease, or on Redis Cluster its copy in the topic's bucket.
local nk = holder_keys(S, node)
local n = read_node(nk.lease)
if n.epoch ~= nepoch or not node_live(n, now) then
  return {'lost', str(n.epoch), 'the node lease is not live'}
end
if redis.call('HEXISTS', KEYS[4], 'deleted') == 1 then
  return {'deleted'}
end
local l = read_lease(S, lk.lock)
if is_live(l, now) then
  return {'held', l.holder, str(l.epoch), str(l.expires - now)}
end
settle(lk, S, topic, channel, l, now)
local prev = l.epoch
local epoch = prev + 1
redis.call('HSET', lk.lock, 'holder', node, 'epoch', str(epoch), 'node_epoch', str(nepoch),
  'acquired_us', str(now), 'expires_us', str(n.expires), 'recorded_epoch', str(prev))
redis.call('SADD', nk.topics, topic)
if prev > 0 then
  local head = redis.call('LINDEX', lk.releases, 0)
  if head then
    local rec = cjson.decode(head)
    if rec.epoch == str(prev) then
      rec.successor = node
      rec.successor_epoch = str(epoch)
      rec.successor_us = str(now)
      redis.call('LSET', lk.releases, 0, cjson.encode(rec))
    end
  end
end
redis.call('PUBLISH', channel, 'lock acquired ' .. str(epoch) .. ' ' .. node)
-- The cursor as the lease finds it: where its holder resumes, checked
-- against the index, and what it publishes first.
local c = redis.call('HMGET', lk.cursor, 'seq', 'hash', 'epoch', 'updated_us')
local seq = num(c[1])
local checked = 0
if seq == 0 or (c[2] and redis.call('HGET', KEYS[6], c[2]) == c[1]) then
  checked = 1
end
local k = tonumber(ARGV[6]) or 0
local within, after = {}, {}
if k > 0 and seq + 1 >= (tonumber(redis.call('HGET', KEYS[4], 'below') or '1') or 1) then
  within = redis.call('XRANGE', KEYS[5], str(seq + 1) .. '-0', str(seq + k) .. '-0')
  after = redis.call('XRANGE', KEYS[5], str(seq + k + 1) .. '-0', '+', 'COUNT', 1)
else
  k = 0
end
return {'ok', str(epoch), str(now), str(n.expires), c[1] or '', c[2] or '', c[3] or '', c[4] or '',
  checked, k, within, after}
