-- Record that the service accepted these versions: each item's high-water mark only grows.
-- KEYS: the high-water mark keys of the items, in ARGV order
-- ARGV: 1 expiry in seconds, then one rank per key (uses newer() from rank.lua)
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local rank = ARGV[i + 1]
  local current = redis.call('GET', key)
  if not current or newer(rank, current) then
    redis.call('SET', key, rank, 'EX', ttl)
  else
    redis.call('EXPIRE', key, ttl)
  end
end
return #KEYS
