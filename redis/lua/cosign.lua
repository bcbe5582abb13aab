-- Add or replace a witness's cosignature on a stored checkpoint.
-- KEYS: checkpoints (hash size -> json)
-- ARGV: size, node, signature (base64)
-- Returns {'ok'} or {'missing'}.
local js = redis.call('HGET', KEYS[1], ARGV[1])
if not js then
  return {'missing'}
end
local cp = cjson.decode(js)
if type(cp.cosigs) ~= 'table' then
  cp.cosigs = {}
end
cp.cosigs[ARGV[2]] = {signature = ARGV[3], at_us = str(now_us())}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(cp))
return {'ok'}
