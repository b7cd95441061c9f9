-- Keep the newest version of each item (or identity) of one target's group of events in its open window.
-- KEYS: 1 window hash, 2 versions hash, 3 window meta hash, 4 stats hash, then one high-water mark
--       key per event, in the order of the events.
-- ARGV: 1 now (epoch seconds), then per event: coalescing key, rank ("version.tiebreak", see
--       coalesce.py), event JSON.
-- Uses newer() from rank.lua.
-- Returns {added, replaced, superseded, stale, count, bytes, oldest stale push (epoch ms) or false,
--          1 if this call opened the window else 0, and then the seconds since the target's last
--          claim on this server's clock (claim.lua records it by the same clock), or false if never}:
-- replaced counts events that took the place of an older version in the window; superseded,
-- events older than what the window holds; stale, events older than what was already pushed;
-- count and bytes are the window's totals afterwards.

local window, versions, meta, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n = #KEYS - 4
local first_seq = redis.call('HINCRBY', stats, 'received', n) - n

local marks = redis.call('MGET', unpack(KEYS, 5, n + 4))
local fields = {}
for i = 1, n do fields[i] = ARGV[3 * i - 1] end
local held = redis.call('HMGET', versions, unpack(fields))

-- What this call wrote so far, so an item that comes twice in one group is ordered against itself.
local wrote_rank, wrote_event, order = {}, {}, {}
local added, replaced, superseded, stale, delta, last_seq = 0, 0, 0, 0, 0, nil
local oldest_stale = false

for i = 1, n do
  local key, rank, event = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local pushed = marks[i]
  if pushed and not newer(rank, pushed) then
    stale = stale + 1
    local when = tonumber(string.match(pushed, '@(%d+)$'))
    if when and (not oldest_stale or when < oldest_stale) then oldest_stale = when end
  else
    local current = wrote_rank[key] or held[i]
    if current and not newer(rank, current) then
      superseded = superseded + 1
    else
      if wrote_event[key] then
        delta = delta - #wrote_event[key]
        replaced = replaced + 1
      elseif current then
        delta = delta - redis.call('HSTRLEN', window, key)
        replaced = replaced + 1
      else
        added = added + 1
      end
      if not wrote_event[key] then order[#order + 1] = key end
      wrote_rank[key], wrote_event[key] = rank, event
      delta = delta + #event
      -- The sequence of the last event that entered a window: what a later claim must wait for.
      last_seq = first_seq + i
    end
  end
end

if #order > 0 then
  local events, ranks = {}, {}
  for _, key in ipairs(order) do
    events[#events + 1] = key
    events[#events + 1] = wrote_event[key]
    ranks[#ranks + 1] = key
    ranks[#ranks + 1] = wrote_rank[key]
  end
  redis.call('HSET', window, unpack(events))
  redis.call('HSET', versions, unpack(ranks))
  redis.call('HSET', stats, 'buffered_seq', last_seq)
end
if stale > 0 then redis.call('HINCRBY', stats, 'stale', stale) end
-- Both an event older than the window's and a version it replaced were superseded.
if superseded + replaced > 0 then redis.call('HINCRBY', stats, 'superseded', superseded + replaced) end
local count, bytes, opened = nil, nil, 0
if #order > 0 then
  if added > 0 then opened = redis.call('HSETNX', meta, 'opened_at', ARGV[1]) end
  count = redis.call('HINCRBY', meta, 'count', added)
  bytes = redis.call('HINCRBY', meta, 'bytes', delta)
else
  count = tonumber(redis.call('HGET', meta, 'count') or 0)
  bytes = tonumber(redis.call('HGET', meta, 'bytes') or 0)
end
if oldest_stale then oldest_stale = tostring(oldest_stale) end
local since_claim = false
if opened == 1 then
  local claimed = tonumber(redis.call('HGET', stats, 'claimed_at'))
  if claimed then
    local clock = redis.call('TIME')
    since_claim = tostring(tonumber(clock[1]) + tonumber(clock[2]) / 1000000 - claimed)
    -- Kept with the window: a release that finds it filled while a batch was in flight makes it due again.
    redis.call('HSET', meta, 'since_claim', since_claim)
  end
end
return {added, replaced, superseded, stale, count, bytes, oldest_stale, opened, since_claim}
