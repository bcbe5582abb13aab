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
    -- a tombstone's record has the mark 'd' after its hash (entry.go)
    local ml = tonumber(string.sub(b, pos + 32 + (string.byte(b, pos + 32) == 100 and 1 or 0), a - 1))
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
  if s == '' then
    return ''
  end
  return string.format(string.rep('%02x', #s), string.byte(s, 1, -1))
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

-- The key space of a script (keys.go, space): ARGV gives it as "P", the
-- prefix, in standalone and Sentinel mode, or as "P TAG" on Redis Cluster,
-- TAG being the hash tag of the bucket of the topics the script touches (a
-- prefix holds no space).
local function space(arg)
  local P, tag = string.match(arg, '^(%S+) (%S+)$')
  if P then
    return {P = P, tag = tag}
  end
  return {P = arg}
end

-- Key names of a topic and of a node lease, as keys.go builds them: the
-- scripts that end a node lease reach the keys of every topic held under
-- it, which the caller cannot list in KEYS beforehand.
local function topic_keys(S, t)
  local b = S.P .. ':{' .. t .. '}:'
  if S.tag then
    b = S.P .. ':{' .. S.tag .. '}:' .. t .. ':'
  end
  return {lock = b .. 'lock', cursor = b .. 'cursor', releases = b .. 'releases'}
end

local function node_keys(P, node)
  local b = P .. ':{_nodes}:'
  return {lease = b .. 'lease:' .. node, topics = b .. 'topics:' .. node, ttl = b .. 'ttl:' .. node,
    all = b .. 'all'}
end

-- holder_keys are the node-lease hash that the topics of S read for node,
-- and the set of node's topics that S holds: the node lease's own keys, or
-- on Redis Cluster the bucket's copy of it and the bucket's set (doc.go,
-- "Cluster"), which have the same fields.
local function holder_keys(S, node)
  if S.tag then
    local b = S.P .. ':{' .. S.tag .. '}:_'
    return {lease = b .. 'node:' .. node, topics = b .. 'topics:' .. node}
  end
  return node_keys(S.P, node)
end

-- The node-lease hash (doc.go): live while not ended and now < live_us.
-- live_us is expires_us but in a bucket's copy on Redis Cluster, which
-- keeps the node lease's expires_us (what is reported) and its own live_us,
-- judged by its own master's clock (copynode.lua).
local function read_node(key)
  local v = redis.call('HMGET', key, 'epoch', 'ended', 'acquired_us', 'expires_us', 'live_us')
  local n = {epoch = num(v[1]), ended = v[2] == '1', acquired = num(v[3]), expires = num(v[4])}
  n.live = num(v[5] or v[4])
  return n
end

local function node_live(n, now)
  return n.epoch > 0 and not n.ended and n.live > now
end

-- The lock hash. A topic lease is live while epoch > recorded_epoch (it has
-- no release record yet) and its holder's node lease, of epoch node_epoch,
-- is live. Ending a node lease records every topic under it in the same
-- script, so an unrecorded lease always has its node lease at node_epoch,
-- not ended: only the node lease's expiry is left to judge.
local function read_lock(key)
  local v = redis.call('HMGET', key, 'holder', 'epoch', 'node_epoch', 'acquired_us', 'expires_us', 'recorded_epoch')
  return {holder = v[1] or '', epoch = num(v[2]), node_epoch = num(v[3]), acquired = num(v[4]),
    expires = num(v[5]), live = 0, recorded = num(v[6]), node_ok = false}
end

-- attach_node reads the node lease (at key nkey) that l's unrecorded lease
-- is held under: l.expires becomes its expiry, l.live until when it is
-- live, and l.node_ok says it is the same node lease, not ended.
local function attach_node(l, nkey)
  if l.epoch > l.recorded then
    local n = read_node(nkey)
    if n.epoch == l.node_epoch and not n.ended then
      l.expires = n.expires
      l.live = n.live
      l.node_ok = true
    end
  end
  return l
end

-- read_lease reads the lock and the node lease its holder holds it under.
local function read_lease(S, key)
  local l = read_lock(key)
  return attach_node(l, holder_keys(S, l.holder).lease)
end

local function is_live(l, now)
  return l.epoch > l.recorded and l.node_ok and l.live > now
end

local function is_lapsed(l, now)
  return l.epoch > l.recorded and not is_live(l, now)
end

-- record writes the one release record of l's epoch, with the cursor as it
-- is (it cannot have moved since the lease ended: commits are fenced), takes
-- the topic out of its node lease's set (unless the caller deletes the whole
-- set: in_set false) and, with a channel, publishes it.
-- lk = {lock, cursor, releases} keys.
local function record(lk, S, topic, channel, l, reason, at, in_set)
  local c = redis.call('HMGET', lk.cursor, 'seq', 'hash')
  local js = cjson.encode({
    topic = topic, holder = l.holder, epoch = str(l.epoch), reason = reason,
    at_us = str(at), last_seq = c[1] or '0', last_hash = tohex(c[2] or '')})
  redis.call('LPUSH', lk.releases, js)
  redis.call('HSET', lk.lock, 'recorded_epoch', str(l.epoch), 'expires_us', str(at))
  if in_set ~= false then
    redis.call('SREM', holder_keys(S, l.holder).topics, topic)
  end
  l.recorded = l.epoch
  if channel then
    redis.call('PUBLISH', channel, 'lock ' .. reason .. ' ' .. js)
  end
  return js
end

-- settle writes the expired record of a lapsed lease that has none yet.
local function settle(lk, S, topic, channel, l, now)
  if is_lapsed(l, now) then
    record(lk, S, topic, channel, l, 'expired', l.expires)
    return true
  end
  return false
end

-- publish_node announces on the nodes channel that node's lease epoch
-- began or ended ('acquired', 'ended'), with the topics whose leases ended
-- with it: "<kind> <epoch> <topic,topic,...> <node>", at most 1000 topics a
-- message (topics hold no ',' or ' '; the node, last, may).
local function publish_node(chan, kind, node, epoch, topics)
  local i = 1
  repeat
    local j = math.min(i + 999, #topics)
    redis.call('PUBLISH', chan, kind .. ' ' .. str(epoch) .. ' ' .. table.concat(topics, ',', i, j) .. ' ' .. node)
    i = j + 1
  until i > #topics
end

-- end_node ends node lease n (keys nk) of node: it writes the record of
-- every topic lease under it with reason at time at, drops it from the set
-- of node leases, and announces it on chan. It returns the records' JSON
-- and the topics they end.
local function end_node(S, chan, node, nk, n, reason, at)
  local topics = redis.call('SMEMBERS', nk.topics)
  table.sort(topics)
  local recs, ended = {}, {}
  for _, t in ipairs(topics) do
    local lk = topic_keys(S, t)
    local l = read_lock(lk.lock)
    if l.epoch > l.recorded and l.holder == node and l.node_epoch == n.epoch then
      recs[#recs + 1] = record(lk, S, t, nil, l, reason, at, false) -- the set goes below
      ended[#ended + 1] = t
    end
  end
  redis.call('DEL', nk.topics)
  if nk.ttl then -- the node lease itself, not a bucket's copy
    redis.call('DEL', nk.ttl)
    redis.call('SREM', nk.all, node)
  end
  redis.call('HSET', nk.lease, 'ended', '1', 'expires_us', str(math.min(n.expires, at)))
  n.ended = true
  if nk.ttl or #ended > 0 then -- a bucket's copy announces only what it ended
    publish_node(chan, 'ended', node, n.epoch, ended)
  end
  return recs, ended
end

-- end_lapsed ends n if it lapsed without being ended, as end_node; its
-- third result says whether it did.
local function end_lapsed(S, chan, node, nk, n, now)
  if n.epoch > 0 and not n.ended and n.live <= now then
    local recs, ended = end_node(S, chan, node, nk, n, 'expired', n.expires)
    return recs, ended, true
  end
  return {}, {}, false
end

-- append_all appends the values of list to out.
local function append_all(out, list)
  for _, v in ipairs(list) do
    out[#out + 1] = v
  end
  return out
end

-- why_not says why node lease n is not the live one of epoch.
local function why_not(n, epoch, now)
  if n.epoch == 0 then
    return 'no node lease'
  elseif n.epoch ~= epoch then
    return 'the node lease is at epoch ' .. str(n.epoch)
  elseif n.ended then
    return 'the node lease ended'
  end
  return 'the node lease lapsed'
end

-- lost_reply is the answer of a script that found node lease n not the
-- live one of epoch: {'lost', why, topic...}, after ending n if it is that
-- epoch and lapsed (the topics listed are those whose leases it ended).
-- It returns nil when n is live.
local function lost_reply(S, chan, node, nk, n, epoch, now)
  if n.epoch == epoch and node_live(n, now) then
    return nil
  end
  local why = why_not(n, epoch, now)
  local ended = {}
  if n.epoch == epoch then
    local _
    _, ended = end_lapsed(S, chan, node, nk, n, now)
  end
  return append_all({'lost', why}, ended)
end
