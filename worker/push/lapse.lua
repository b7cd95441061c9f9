-- End a target's pause that is over, unless another push paused it again since it was read.
-- KEYS: 1 the target's pause hash
-- ARGV: 1 the pause's end ('until') as it was read
-- Returns 1 when the pause was ended, 0 when it changed (the new pause stays).
if redis.call('HGET', KEYS[1], 'until') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
