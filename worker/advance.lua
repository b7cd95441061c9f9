-- Record that the service accepted these versions: each item's high-water mark only grows.
-- KEYS: the high-water mark keys of the items, in ARGV order
-- ARGV: 1 expiry in seconds, then one rank ("version.tiebreak", as coalesce.lua) per key
local function newer(a, b)
  local va, ta = string.match(a, '^(%d+)%.?(%d?)$')
  local vb, tb = string.match(b, '^(%d+)%.?(%d?)$')
  if #va ~= #vb then return #va > #vb end
  if va ~= vb then return va > vb end
  return ta > tb
end
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
