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

-- Queue entries are packed (entry.go): field h is "<hash> <ingested_us>
-- <len(msg_id)> <msg_id><id>", the hash as its 32 bytes. entry_hash returns
-- the hash of the first entry of an XRANGE reply, '' if there is none.
local function entry_hash(e)
  if e[1] then
    return string.sub(e[1][2][2], 1, 32)
  end
  return ''
end

-- tohex writes a hash kept as its bytes in hex, for JSON and messages.
local function tohex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- entry_msgid returns the msg id of a queue entry's h field.
local function entry_msgid(h)
  local i = string.find(h, ' ', 34, true)
  local j = string.find(h, ' ', i + 1, true)
  local n = tonumber(string.sub(h, i + 1, j - 1))
  return string.sub(h, j + 1, j + n)
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
