-- The reaper hands batch B out again, unless B is finished or a task holds its lease.
-- KEYS: 1 batch meta, 2 lease
-- Returns 1 when B is to be enqueued again (its count of enqueues no task started is raised), else 0.
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'waiting', 'parked')
redis.call('HINCRBY', KEYS[1], 'queued', 1)
return 1
