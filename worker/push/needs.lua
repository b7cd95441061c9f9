-- Record the needs of a claimed batch (prerequisites.py), unless the batch is finished already (its
-- meta is gone): a claimer slower than the reaper must not write back a meta hash nobody deletes.
-- KEYS: 1 batch meta
-- ARGV: 1 the field that marks the needs unknown (removed), then field, value, ... of the needs
-- Returns 1 recorded, 0 the batch is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
