-- Keep the newest version of one item (or identity) in its target's open window.
-- KEYS: 1 window hash, 2 versions hash, 3 window meta hash, 4 the item's high-water mark, 5 stats hash
-- ARGV: 1 coalescing key, 2 rank ("version.tiebreak", see coalesce.py), 3 event JSON, 4 now (epoch seconds)
-- Uses newer() from rank.lua.
-- Returns {outcome, count, bytes}; outcome: 1 added, 2 replaced an older version,
-- 0 superseded (the window holds this version or a newer one), -1 stale (already pushed; a
-- fourth element is then the item's high-water mark).

local key, version, event = ARGV[1], ARGV[2], ARGV[3]
redis.call('HINCRBY', KEYS[5], 'received', 1)

local pushed = redis.call('GET', KEYS[4])
if pushed and not newer(version, pushed) then
  redis.call('HINCRBY', KEYS[5], 'stale', 1)
  return {-1, 0, 0, pushed}
end

local held = redis.call('HGET', KEYS[2], key)
if held and not newer(version, held) then
  redis.call('HINCRBY', KEYS[5], 'superseded', 1)
  return {0, 0, 0}
end

local outcome = 1
if held then
  local old = redis.call('HSTRLEN', KEYS[1], key)
  redis.call('HINCRBY', KEYS[3], 'bytes', -old)
  redis.call('HINCRBY', KEYS[5], 'superseded', 1)
  outcome = 2
else
  redis.call('HINCRBY', KEYS[3], 'count', 1)
  redis.call('HSETNX', KEYS[3], 'opened_at', ARGV[4])
end
redis.call('HSET', KEYS[1], key, event)
redis.call('HSET', KEYS[2], key, version)
-- The sequence of the last event that entered a window: what a later claim must wait for.
redis.call('HSET', KEYS[5], 'buffered_seq', redis.call('HGET', KEYS[5], 'received'))
local bytes = redis.call('HINCRBY', KEYS[3], 'bytes', #event)
local count = tonumber(redis.call('HGET', KEYS[3], 'count'))
return {outcome, count, bytes}
