-- The alerts whose clock is due: up to `limit` ids, earliest first. Read-only.
--
-- The clock is kept in per-alert buckets with a directory of each bucket's earliest score
-- (buckets.lua). The `limit` buckets with the earliest scores hold the `limit` earliest entries
-- (every other bucket starts no earlier than each of theirs), so only they are read.
--
-- KEYS: 1 clock
-- ARGV: 1 now (ms), 2 limit
local limit = tonumber(ARGV[2])
local buckets = redis.call('ZRANGEBYSCORE', KEYS[1] .. ':dir', '-inf', ARGV[1], 'LIMIT', 0, limit)
local rows = {}
for _, bucket in ipairs(buckets) do
  local r = redis.call('ZRANGEBYSCORE', KEYS[1] .. ':' .. bucket, '-inf', ARGV[1], 'WITHSCORES',
    'LIMIT', 0, limit)
  for j = 1, #r, 2 do
    rows[#rows + 1] = { tonumber(r[j + 1]), r[j] }
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
