-- Applies one partition batch atomically: applied offsets, alert records, the clock, open and
-- overdue indexes, and the escalation outbox. Refuses if the caller's epoch is stale (fencing).
-- Returns the outbox stream ids of the escalations, in order.
--
-- KEYS: 1 epoch, 2 offsets, 3 clock, 4 open, 5 overdue, 6 outbox, 7.. one per alert record
-- ARGV: epoch,
--       n_offsets, (topic, offset)*,
--       n_alerts, (alert_id, state, next_due, open_score, overdue_score, ttl_ms)*  ('' = none),
--       n_escalations, (escalation_id, json)*
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is stale, the partition is now at ' .. current)
end

local i = 2
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local topic, offset = ARGV[i], tonumber(ARGV[i + 1]); i = i + 2
  local applied = tonumber(redis.call('HGET', KEYS[2], topic) or '-1')
  if offset > applied then
    redis.call('HSET', KEYS[2], topic, offset)
  end
end

local function index(key, score, member)
  if score == '' then
    redis.call('ZREM', key, member)
  else
    redis.call('ZADD', key, score, member)
  end
end

n = tonumber(ARGV[i]); i = i + 1
for k = 1, n do
  local id, state, next_due, open, overdue, ttl =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  if ttl == '' then
    redis.call('SET', KEYS[6 + k], state)
  else
    redis.call('SET', KEYS[6 + k], state, 'PX', ttl)
  end
  index(KEYS[3], next_due, id)
  index(KEYS[4], open, id)
  index(KEYS[5], overdue, id)
end

n = tonumber(ARGV[i]); i = i + 1
local added = {}
for k = 1, n do
  added[k] = redis.call('XADD', KEYS[6], '*', 'id', ARGV[i], 'e', ARGV[i + 1]); i = i + 2
end
return added
