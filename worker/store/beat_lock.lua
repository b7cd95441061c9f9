-- Take or renew (ARGV[2] = ms to live) or drop (ARGV[2] = 0) lock KEYS[1] for token ARGV[1].
-- Returns the token of whoever else holds it; nothing when ARGV[1] holds it now (or dropped it).
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return false
