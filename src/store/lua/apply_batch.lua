-- Applies one partition batch atomically: applied offsets, policy snapshots, alert records, the
-- clock, open and overdue indexes, the escalation outbox and the Alertmanager queue.
--
-- First the owner check, the one place both rules live:
-- - FENCED: another owner claimed the partition (its epoch is newer, or as new with another token);
-- - ROLLBACK: Redis is behind what this owner wrote (an older epoch, or a lower write sequence):
--   a replica promoted, an everysec crash, a restore, a flush. The caller rebuilds; nothing of
--   this batch is written.
-- An empty batch only checks. Otherwise the write sequence goes up by one.
-- Returns the outbox stream ids of the escalations, in order.
--
-- KEYS: 1 owner, 2 offsets, 3 clock, 4 open, 5 overdue, 6 outbox, 7 alertmanager queue,
--       8 policy snapshots, 9.. one per alert record
-- ARGV: epoch, token, seq,
--       n_offsets, (topic, offset)*,
--       n_alerts, (alert_id, state, next_due, open_score, overdue_score, ttl_ms)*  ('' = none),
--       n_escalations, (escalation_id, json)*,
--       n_notices, (json)*,
--       n_policies, (version, json)*  (a snapshot is written once: the alerts it names keep it)
local owner = redis.call('HMGET', KEYS[1], 'epoch', 'token', 'seq')
local epoch, token, seq = tonumber(owner[1] or '0'), owner[2], tonumber(owner[3] or '0')
local mine, my_seq = tonumber(ARGV[1]), tonumber(ARGV[3])
if epoch > mine or (epoch == mine and token ~= ARGV[2]) then
  return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is stale, the partition is now at ' .. epoch)
end
if epoch < mine or seq < my_seq then
  return redis.error_reply('ROLLBACK the partition is at epoch ' .. epoch .. ' sequence ' .. seq ..
    ', behind epoch ' .. ARGV[1] .. ' sequence ' .. ARGV[3])
end

local i = 4
local n = tonumber(ARGV[i]); i = i + 1
local writes = n
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
writes = writes + n
for k = 1, n do
  local id, state, next_due, open, overdue, ttl =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  if ttl == '' then
    redis.call('SET', KEYS[8 + k], state)
  else
    redis.call('SET', KEYS[8 + k], state, 'PX', ttl)
  end
  index(KEYS[3], next_due, id)
  index(KEYS[4], open, id)
  index(KEYS[5], overdue, id)
end

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
local added = {}
for k = 1, n do
  added[k] = redis.call('XADD', KEYS[6], '*', 'id', ARGV[i], 'e', ARGV[i + 1]); i = i + 2
end

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
for _ = 1, n do
  redis.call('XADD', KEYS[7], '*', 'a', ARGV[i]); i = i + 1
end

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
for _ = 1, n do
  redis.call('HSETNX', KEYS[8], ARGV[i], ARGV[i + 1]); i = i + 2
end

if writes > 0 then
  redis.call('HINCRBY', KEYS[1], 'seq', 1)
end
return added
