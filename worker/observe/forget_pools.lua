-- Forget the pools a reader found stale, unless their worker recorded its pool again since the read.
-- KEYS: 1 the pools hash. ARGV: pairs of worker, its record as the reader found it.
-- Returns how many were forgotten.
local forgotten = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    forgotten = forgotten + 1
  end
end
return forgotten
