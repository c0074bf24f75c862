-- Takes ownership of a partition: bumps its epoch and records the new owner's token, so any
-- previous owner's writes are refused, and returns the new epoch, the partition's write sequence
-- and the applied offsets.
--
-- KEYS: 1 owner (hash: epoch, token, seq), 2 offsets
-- ARGV: 1 token of the new owner
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'token', ARGV[1])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
return { epoch, seq, redis.call('HGETALL', KEYS[2]) }
