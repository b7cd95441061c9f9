-- Renew (ARGV[2] = ms) or drop (ARGV[2] = 0) a lease, only for the holder of token ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
