-- Takes ownership of a partition: bumps its epoch and records the new owner's token, so any
-- previous owner's writes are refused, and returns the new epoch, the partition's write sequence
-- and the applied offsets.
--
-- Earlier versions kept the open alerts in a zset (KEYS[3]) where `open` now counts them: the
-- first claim by this version takes the count from it and drops it.
--
-- KEYS: 1 owner (hash: epoch, token, seq, open), 2 offsets, 3 the earlier versions' open zset
-- ARGV: 1 token of the new owner
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
if redis.call('HEXISTS', KEYS[1], 'open') == 0 then
  redis.call('HSET', KEYS[1], 'open', redis.call('ZCARD', KEYS[3]))
  redis.call('DEL', KEYS[3])
end
redis.call('HSET', KEYS[1], 'token', ARGV[1])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
return { epoch, seq, redis.call('HGETALL', KEYS[2]) }
