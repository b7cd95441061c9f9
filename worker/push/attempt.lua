-- What a push task records on batch B as it goes, only while it holds B's lease: a task that
-- lost its lease writes nothing (another task owns the batch).
-- KEYS: 1 batch meta, 2 lease
-- ARGV: 1 lease token, 2 step:
--   "start"  the task took the lease: B no longer waits in the task queue (see flush.py);
--   "push"   the task starts to push: one more attempt, returned. An attempt stays counted only
--            if its task never comes back: a delivery that died without finishing;
--   "park"   the task comes back without finishing B (the target is paused): it gives back its
--            own attempt, if it counted one, and the sweep hands B out again once the pause is over;
--            B's pushes probe first from now on ('probe'), since its target was refusing them.
-- Returns the attempts counted ("push") or 1, and -1 when the lease is not the task's or B is gone.
if redis.call('GET', KEYS[2]) ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local step = ARGV[2]
if step == 'start' then
  redis.call('HDEL', KEYS[1], 'queued', 'parked')
  return 1
end
if step == 'push' then
  redis.call('HSET', KEYS[1], 'pushing', ARGV[1])
  return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
if redis.call('HGET', KEYS[1], 'pushing') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'pushing')
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
redis.call('HSET', KEYS[1], 'parked', 1, 'probe', 1)
return 1
