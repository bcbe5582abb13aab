-- Redis Cluster: how many topics each node holds in a bucket (read only).
-- KEYS: the bucket's topics set of each node
-- Returns the sizes, in order.
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = redis.call('SCARD', k)
end
return out
