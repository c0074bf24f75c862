-- Takes ownership of a partition: bumps its epoch so any previous owner's writes are refused,
-- and returns the new epoch with the applied offsets.
--
-- KEYS: 1 epoch, 2 offsets
local epoch = redis.call('INCR', KEYS[1])
return { epoch, redis.call('HGETALL', KEYS[2]) }
