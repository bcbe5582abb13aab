-- After the master's replication id changed (a failover, or a restart that
-- may have lost acknowledged writes): end the live lease, so that every
-- publisher re-acquires under a new epoch and resumes from the cursor as
-- this server has it, and check that the cursor still points at its item.
-- Runs once per topic per replication id: every node runs it, the first
-- one acts.
-- KEYS: lock, cursor, releases, seq, queue
-- ARGV: topic, channel, replid, key space (lib.lua, space)
-- Returns {'seen'} | {'first'} | {'ok', ended(0|1), problem}
local lk = {lock = KEYS[1], cursor = KEYS[2], releases = KEYS[3]}
local topic, channel, replid, S = ARGV[1], ARGV[2], ARGV[3], space(ARGV[4])
local seen = redis.call('HGET', lk.lock, 'replid')
if seen == replid then
  return {'seen'}
end
redis.call('HSET', lk.lock, 'replid', replid)
if not seen then
  return {'first'}
end
local now = now_us()
local l = read_lease(S, lk.lock)
settle(lk, S, topic, channel, l, now)
local ended = 0
if is_live(l, now) then
  -- The topic lease ends; its node lease goes on (as Release).
  record(lk, S, topic, channel, l, 'failed', now)
  ended = 1
end
local problem = ''
local c = redis.call('HMGET', lk.cursor, 'seq', 'hash')
local cseq = num(c[1])
if cseq > 0 then
  local last = num(redis.call('HGET', KEYS[4], 'last'))
  local below = num(redis.call('HGET', KEYS[4], 'below'))
  if cseq > last then
    problem = 'cursor at seq ' .. str(cseq) .. ' is past the last appended seq ' .. str(last)
  else
    local h = hash_finder(KEYS[5])(cseq)
    if h == '' then
      if cseq >= below then
        problem = 'the item at the cursor (seq ' .. str(cseq) .. ') is missing'
      end
    elseif h ~= c[2] then
      problem = 'the item at the cursor (seq ' .. str(cseq) .. ') has another hash'
    end
  end
end
return {'ok', ended, problem}
