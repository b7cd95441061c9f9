-- Record that the service accepted these versions: each item's high-water mark only grows.
-- KEYS: the high-water mark keys of the items, in ARGV order
-- ARGV: 1 expiry in seconds, then one version (decimal string) per key
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local version = ARGV[i + 1]
  local current = redis.call('GET', key)
  if not current or newer(version, current) then
    redis.call('SET', key, version, 'EX', ttl)
  else
    redis.call('EXPIRE', key, ttl)
  end
end
return #KEYS
