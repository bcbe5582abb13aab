-- Helpers shared by every Baton script (prepended to each one).
--
-- Times are microseconds from the server's clock (TIME). Lua numbers are
-- doubles: exact for integers below 2^53, so for microsecond times and for
-- every seq and epoch Baton will see. Numbers are written back as strings with
-- str(), never tostring(), which would use an exponent above 14 digits.

local function str(n)
  return string.format('%.0f', n)
end

local function num(v)
  if v then
    return tonumber(v) or 0
  end
  return 0
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The queue keeps one stream entry per append: its id is its last seq, and
-- its one field b is "<first seq> <ingested_us> " followed by one record per
-- item, in seq order (entry.go):
--   <item hash, 32 bytes><len(msg_id)> <len(id)> <len(value)> <msg_id><id><value>
-- each_record calls f(seq, hash, msg_id) for the records of b in order,
-- until f returns true.
local function each_record(b, f)
  local sp = string.find(b, ' ', 1, true)
  local seq = tonumber(string.sub(b, 1, sp - 1))
  local pos = string.find(b, ' ', sp + 1, true) + 1
  local n = #b
  while pos + 32 <= n do
    local a = string.find(b, ' ', pos + 32, true)
    local c = string.find(b, ' ', a + 1, true)
    local d = string.find(b, ' ', c + 1, true)
    local ml = tonumber(string.sub(b, pos + 32, a - 1))
    if f(seq, string.sub(b, pos, pos + 31), string.sub(b, d + 1, d + ml)) then
      return
    end
    pos = d + 1 + ml + tonumber(string.sub(b, a + 1, c - 1)) + tonumber(string.sub(b, c + 1, d - 1))
    seq = seq + 1
  end
end

-- hash_finder returns a function that gives the hash of the item at seq in
-- queue q, '' if the queue does not hold it. It keeps the hashes of the
-- last entry it read, so that asking for many seqs of one entry reads and
-- parses it once.
local function hash_finder(q)
  local lo, hi, hs = 1, 0, {}
  return function(seq)
    if seq < lo or seq > hi then
      local e = redis.call('XRANGE', q, str(seq) .. '-0', '+', 'COUNT', 1)
      if not e[1] then
        return ''
      end
      local id = e[1][1]
      lo, hi, hs = nil, tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)), {}
      each_record(e[1][2][2], function(s, hash)
        lo = lo or s
        hs[s] = hash
        return false
      end)
      lo = lo or hi + 1
    end
    return hs[seq] or ''
  end
end

-- tohex writes a hash kept as its bytes in hex, for JSON and messages.
local function tohex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- Calls redis.call(cmd, key, ...list) in chunks: unpack has a stack limit.
local function chunked(cmd, key, list, step)
  local out = {}
  for i = 1, #list, step do
    local j = math.min(i + step - 1, #list)
    local r = redis.call(cmd, key, unpack(list, i, j))
    if type(r) == 'table' then
      for _, v in ipairs(r) do
        out[#out + 1] = v
      end
    end
  end
  return out
end

-- The lock hash. A lease is live while epoch > recorded_epoch (it has no
-- release record yet) and expires_us is in the future.
local function read_lock(key)
  local v = redis.call('HMGET', key, 'holder', 'epoch', 'acquired_us', 'expires_us', 'recorded_epoch')
  return {holder = v[1] or '', epoch = num(v[2]), acquired = num(v[3]), expires = num(v[4]), recorded = num(v[5])}
end

local function is_live(l, now)
  return l.epoch > l.recorded and l.expires > now
end

local function is_lapsed(l, now)
  return l.epoch > l.recorded and l.expires <= now
end

-- record writes the one release record of l's epoch, with the cursor as it
-- is (it cannot have moved since the lease ended: commits are fenced), and
-- publishes it. lk = {lock, cursor, releases} keys.
local function record(lk, topic, channel, l, reason, at)
  local c = redis.call('HMGET', lk.cursor, 'seq', 'hash')
  local js = cjson.encode({
    topic = topic, holder = l.holder, epoch = str(l.epoch), reason = reason,
    at_us = str(at), last_seq = c[1] or '0', last_hash = tohex(c[2] or '')})
  redis.call('LPUSH', lk.releases, js)
  redis.call('HSET', lk.lock, 'recorded_epoch', str(l.epoch))
  l.recorded = l.epoch
  redis.call('PUBLISH', channel, 'lock ' .. reason .. ' ' .. js)
  return js
end

-- settle writes the expired record of a lapsed lease that has none yet.
local function settle(lk, topic, channel, l, now)
  if is_lapsed(l, now) then
    record(lk, topic, channel, l, 'expired', l.expires)
    return true
  end
  return false
end
