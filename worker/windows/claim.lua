-- Claim a target's open window as batch B, unless a batch of the target is already in flight.
-- KEYS: 1 window, 2 window versions, 3 window meta, 4 in-flight set,
--       5 batch events, 6 batch versions, 7 batch meta, 8 burst hash, 9 stats
-- ARGV: 1 batch id, 2 now (epoch seconds), 3 opens bursts ("1" for sources, "0" for providers),
--       4 "1" when the target must follow providers' identities (prerequisites.py records which next)
-- Returns {1, epoch, count} claimed; {0} a batch is in flight; {-1} the window is empty.
if redis.call('SCARD', KEYS[4]) > 0 then return {0} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  return {-1}
end
redis.call('RENAME', KEYS[1], KEYS[5])
redis.call('RENAME', KEYS[2], KEYS[6])
redis.call('RENAME', KEYS[3], KEYS[7])
redis.call('SADD', KEYS[4], ARGV[1])
local epoch = 0
if ARGV[3] == '1' then
  -- A burst opens with the first batch after IDLE (or ever): a new epoch fences the IDLE of the last one.
  if redis.call('HGET', KEYS[8], 'state') ~= 'open' then
    redis.call('HSET', KEYS[8], 'state', 'open')
    redis.call('HINCRBY', KEYS[8], 'epoch', 1)
  end
  epoch = tonumber(redis.call('HGET', KEYS[8], 'epoch'))
  redis.call('HSET', KEYS[8], 'last_activity', ARGV[2])
end
-- Every event buffered so far is in this batch or an earlier one: once B is finished, so are they.
local seq = redis.call('HGET', KEYS[9], 'buffered_seq') or '0'
-- queued: enqueues of B that no task started yet (the claim enqueues it once; see flush.py).
redis.call('HSET', KEYS[7], 'epoch', epoch, 'claimed_at', ARGV[2], 'attempts', 0, 'seq', seq, 'queued', 1)
-- The target's next window is short only if it opens a whole window after this claim (coalesce.py),
-- measured on this server's clock: the claimer's `now` may be a slow sweep's start or another host's.
local clock = redis.call('TIME')
redis.call('HSET', KEYS[9], 'claimed_at', clock[1] .. '.' .. string.format('%06d', clock[2]))
-- Until the needs are recorded, a push must record them itself (the claimer may die in between).
if ARGV[4] == '1' then redis.call('HSET', KEYS[7], 'needs_unknown', 1) end
return {1, epoch, tonumber(redis.call('HGET', KEYS[7], 'count'))}
