-- Release batch B once it is pushed or dead-lettered, if this task still holds its lease.
-- KEYS: 1 batch events, 2 batch versions, 3 batch meta, 4 lease, 5 in-flight set, 6 burst hash, 7 stats,
--       8 the target's window meta
-- ARGV: 1 batch id, 2 lease token, 3 now, 4 stats field to add to, 5 how many
-- Returns {1, opened_at, since_claim} released, with what the window that filled meanwhile says of its
-- deadline (false when there is none); 0 the lease was lost (another worker owns the batch now).
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return 0 end
-- Items waiting for this target's identities look at finished_seq (see prerequisites.py).
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
if seq > tonumber(redis.call('HGET', KEYS[7], 'finished_seq') or '0') then
  redis.call('HSET', KEYS[7], 'finished_seq', seq)
end
-- UNLINK frees a batch of a million entries in the background instead of blocking Redis meanwhile.
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[5], ARGV[1])
if redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('HSET', KEYS[6], 'last_activity', ARGV[3])
end
redis.call('HINCRBY', KEYS[7], ARGV[4], ARGV[5])
return {1, redis.call('HGET', KEYS[8], 'opened_at'), redis.call('HGET', KEYS[8], 'since_claim')}
