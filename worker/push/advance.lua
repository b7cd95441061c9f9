-- Record that the service accepted these versions: each item's high-water mark only grows.
-- KEYS: the high-water mark keys of the items, in ARGV order
-- ARGV: 1 expiry in seconds, 2 epoch ms of the acceptance, then one rank per key
-- (uses newer() from rank.lua). A mark is "rank@ms": a rebuild needs to know when it was pushed.
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local rank = ARGV[i + 2]
  local current = redis.call('GET', key)
  if not current or newer(rank, current) then
    redis.call('SET', key, rank .. '@' .. ARGV[2], 'EX', ttl)
  else
    redis.call('EXPIRE', key, ttl)
  end
end
return #KEYS
