-- Read a page of a topic's snapshot (baton.Snapshots, snapshot.go) in one
-- atomic step with the cursor's seq: the rows of the ids after after_id,
-- in byte order, at most limit + 1 (the extra one says more follow).
-- KEYS: cursor, meta, snapshot rows, snapshot ids
-- ARGV: after_id ('' = from the first), limit + 1
-- Returns {seq, id1, row1, id2, row2, ...}; seq 0 and no rows for a deleted
-- topic.
if redis.call('HEXISTS', KEYS[2], 'deleted') == 1 then
  return {'0'}
end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
local from = '-'
if ARGV[1] ~= '' then
  from = '(' .. ARGV[1]
end
local ids = redis.call('ZRANGEBYLEX', KEYS[4], from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {seq}
if #ids == 0 then
  return out
end
local rows = redis.call('HMGET', KEYS[3], unpack(ids))
for i, id in ipairs(ids) do
  out[2 * i] = id
  out[2 * i + 1] = rows[i] or ''
end
return out
