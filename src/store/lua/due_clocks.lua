-- The alerts whose clock is due: up to `limit` ids, earliest first among the buckets read.
--
-- The clock is kept in buckets (by handle range) with a directory that holds, per bucket, a
-- time no later than its earliest entry (buckets.lua). The buckets are read in directory
-- order, each for all it holds due, until `limit` ids are found: in a burst, the earliest
-- buckets first and every bucket read once, not the `limit` earliest entries of all (every id
-- returned is due all the same). A bucket that holds nothing due after all gets its true
-- earliest time in the directory (or leaves it, empty), so an early time is put right once.
--
-- A member is the alert's handle, or its id if it has none (names.lua); ids are returned. A
-- handle the id map no longer holds names no open alert (its record closed, or is gone), so
-- its entry is dropped: nothing could fire for it.
--
-- KEYS: 1 clock, 2 the id map
-- ARGV: 1 now (ms), 2 limit
local dir = KEYS[1] .. ':dir'
local limit = tonumber(ARGV[2])
local rows = {}
local offset = 0
while #rows < limit do
  local buckets = redis.call('ZRANGEBYSCORE', dir, '-inf', ARGV[1], 'LIMIT', offset, 64)
  if #buckets == 0 then
    break
  end
  for _, bucket in ipairs(buckets) do
    if #rows >= limit then
      break
    end
    local key = KEYS[1] .. ':' .. bucket
    local r = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
    if #r == 0 then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if first[2] then
        redis.call('ZADD', dir, first[2], bucket)
      else
        redis.call('ZREM', dir, bucket)
      end
    else
      offset = offset + 1
      for j = 1, #r, 2 do
        local id = r[j]
        if string.byte(id, 1) == 35 then
          id = redis.call('HGET', ids_key(KEYS[2], id), id)
          if not id then
            redis.call('ZREM', key, r[j])
          end
        end
        if id then
          rows[#rows + 1] = { tonumber(r[j + 1]), id }
        end
      end
    end
  end
end
table.sort(rows, function(a, b)
  return a[1] < b[1]
end)
local out = {}
for j = 1, math.min(#rows, limit) do
  out[j] = rows[j][2]
end
return out
