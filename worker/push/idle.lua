-- Decide whether a source's burst may close: nothing buffered, in flight or retrying, quiet long enough.
-- KEYS: 1 burst hash, 2 window, 3 in-flight set
-- ARGV: 1 now, 2 quiet seconds, 3 mode, 4 epoch (verify and close only), 5 seconds after which a
--       burst still closing is handed out again (its IDLE task was lost; check only). Modes:
--   "check"  marks the burst closing and returns its epoch (0 when it may not close or is closing
--            already, -1 when not open);
--   "verify" returns 1 if nothing reopened the burst since the check (a claim bumps the epoch);
--   "close"  marks it idle on the same condition.
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[3] ~= 'check' then
  if state ~= 'closing' or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[4] then return 0 end
  if ARGV[3] == 'close' then redis.call('HSET', KEYS[1], 'state', 'idle') end
  return 1
end
if state ~= 'open' and state ~= 'closing' then return -1 end
-- A rebuild keeps its REBUILD activity open until the run has finished.
if redis.call('HEXISTS', KEYS[1], 'rebuild') == 1 then return 0 end
local now = tonumber(ARGV[1])
if state == 'closing' and now - tonumber(redis.call('HGET', KEYS[1], 'closing_at') or '0') < tonumber(ARGV[5]) then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('SCARD', KEYS[3]) > 0 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_activity') or '0')
if now - last < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'closing', 'closing_at', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'epoch'))
