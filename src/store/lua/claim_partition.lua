-- Takes ownership of a partition: bumps its epoch and records the new owner's token, so any
-- previous owner's writes are refused, and returns the new epoch, the partition's write sequence,
-- the applied offsets, the dictionary and the count of handles given (names.lua), from which the
-- owner codes what it writes.
--
-- The owner hash also records who claimed: the process (random per run) and its
-- `group.instance.id`, if it has one. A process restarted with that instance id may take the
-- partition back at once (ARGV[4] = '1'): the claim then happens only if the last claim was made
-- with the same instance id, and returns nil otherwise (someone else took the partition since).
--
-- Earlier versions kept the open alerts in a zset (KEYS[3]) where `open` now counts them: the
-- first claim by this version takes the count from it and drops it.
--
-- Earlier versions kept the board's stage indexes and the clock as plain zsets; a claim moves
-- them into buckets (buckets.lua), once. Earlier versions' index members were long; a claim
-- writes them short (names.lua), once (owner field 'names'). Earlier versions bucketed the id map
-- and the clock entries named by a handle otherwise; a claim moves them to the handles' ranges
-- (names.lua), once (owner field 'ranges').
--
-- KEYS: 1 owner (hash: epoch, token, seq, open, process, instance), 2 offsets,
--       3 the earlier versions' open zset, 4 due, 5 late (bucketed indexes), 6 clock,
--       7 the index members' dictionary, 8 the id map
-- ARGV: 1 token of the new owner, 2 its process, 3 its instance id ('' = none),
--       4 '1' = take back only (the recorded instance id must be ARGV[3]),
--       5 the number of per-alert buckets
if ARGV[4] == '1' and (ARGV[3] == '' or redis.call('HGET', KEYS[1], 'instance') ~= ARGV[3]) then
  return nil
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
if redis.call('HEXISTS', KEYS[1], 'open') == 0 then
  redis.call('HSET', KEYS[1], 'open', redis.call('ZCARD', KEYS[3]))
  redis.call('DEL', KEYS[3])
end
bucket_migrate(KEYS[4])
bucket_migrate(KEYS[5])
if redis.call('HSETNX', KEYS[1], 'names', '1') == 1 then
  names_migrate(KEYS[4], KEYS[7])
  names_migrate(KEYS[5], KEYS[7])
end
clock_migrate(KEYS[6], tonumber(ARGV[5]))
if redis.call('HSETNX', KEYS[1], 'ranges', '1') == 1 then
  ranges_migrate(KEYS[6], KEYS[8])
end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'process', ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'instance')
else
  redis.call('HSET', KEYS[1], 'instance', ARGV[3])
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
return { epoch, seq, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[7]),
  tonumber(redis.call('HGET', KEYS[1], 'handles') or '0') }
