-- Bucketed sorted sets: one ordered index kept as many small zsets, so Redis stores each as a
-- listpack (up to zset-max-listpack-entries, 128 by default) at ~50 bytes per entry instead of a
-- skiplist at ~150. Prepended to the scripts that use it.
--
-- An index named `base` is a directory `base:dir` (zset: bucket id -> bound) and buckets
-- `base:<id>` (zsets of the entries). Bucket i holds the entries whose score is in
-- [bound_i, bound_i+1): every score lives in exactly one bucket, so the buckets in directory
-- order, each in its own (score, member) order, are the index in (score, member) order. A bucket
-- splits at a score boundary when it grows past BUCKET_MAX (never between equal scores: a
-- bucket of one deadline may grow, and Redis then keeps it as a skiplist), and merges with a
-- neighbour when it falls below BUCKET_MIN. Removal needs the entry's score, which every caller
-- knows (an index entry's deadline is part of the entry). Ids come from `base:n`.
local BUCKET_MAX = 112
local BUCKET_MIN = 24

-- The bucket that holds `score`: the last whose bound is at or below it, else the first.
local function bucket_of(dir, score)
  local b = redis.call('ZREVRANGEBYSCORE', dir, score, '-inf', 'LIMIT', 0, 1)[1]
  if b then
    return b, false
  end
  return redis.call('ZRANGE', dir, 0, 0)[1], true
end

-- Copies the entries of `from` with score in [min, +inf) to `to`, in chunks (a Lua call takes
-- a bounded number of arguments), and returns how many.
local function copy_entries(from, to, min)
  local offset = 0
  while true do
    local rows = redis.call('ZRANGEBYSCORE', from, min, '+inf', 'WITHSCORES', 'LIMIT', offset, 500)
    if #rows == 0 then
      return offset
    end
    local args = {}
    for j = 1, #rows, 2 do
      args[#args + 1] = rows[j + 1]
      args[#args + 1] = rows[j]
    end
    redis.call('ZADD', to, unpack(args))
    offset = offset + #rows / 2
  end
end

local function split(base, dir, key)
  local n = redis.call('ZCARD', key)
  local at = redis.call('ZRANGE', key, math.floor(n / 2), math.floor(n / 2), 'WITHSCORES')[2]
  local low = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
  if tonumber(at) == tonumber(low) then
    at = redis.call('ZRANGEBYSCORE', key, '(' .. at, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]
    if not at then
      return
    end
  end
  local id = redis.call('INCR', base .. ':n')
  copy_entries(key, base .. ':' .. id, at)
  redis.call('ZREMRANGEBYSCORE', key, at, '+inf')
  redis.call('ZADD', dir, at, id)
end

-- Merges a small bucket into its predecessor, or its successor into it, if they fit.
local function merge(base, dir, b, key, n)
  local bound = redis.call('ZSCORE', dir, b)
  local prev = redis.call('ZREVRANGEBYSCORE', dir, '(' .. bound, '-inf', 'LIMIT', 0, 1)[1]
  if prev then
    local to = base .. ':' .. prev
    if redis.call('ZCARD', to) + n <= BUCKET_MAX then
      copy_entries(key, to, '-inf')
      redis.call('DEL', key)
      redis.call('ZREM', dir, b)
    end
    return
  end
  local next = redis.call('ZRANGEBYSCORE', dir, '(' .. bound, '+inf', 'LIMIT', 0, 1)[1]
  if next then
    local from = base .. ':' .. next
    if redis.call('ZCARD', from) + n <= BUCKET_MAX then
      copy_entries(from, key, '-inf')
      redis.call('DEL', from)
      redis.call('ZREM', dir, next)
    end
  end
end

-- ZADD to the index; 1 if the member is new to its bucket.
local function bucket_add(base, score, member)
  local dir = base .. ':dir'
  local b, below = bucket_of(dir, score)
  if not b then
    b = redis.call('INCR', base .. ':n')
    below = true
  end
  if below then
    -- The first bucket's bound follows its lowest entry, so every bound orders its bucket.
    redis.call('ZADD', dir, score, b)
  end
  local key = base .. ':' .. b
  local added = redis.call('ZADD', key, score, member)
  if added == 1 and redis.call('ZCARD', key) > BUCKET_MAX then
    split(base, dir, key)
  end
  return added
end

-- ZREM from the index, the entry found by its score; 1 if it was there.
local function bucket_rem(base, score, member)
  local dir = base .. ':dir'
  local b = bucket_of(dir, score)
  if not b then
    return 0
  end
  local key = base .. ':' .. b
  local removed = redis.call('ZREM', key, member)
  if removed == 1 then
    local n = redis.call('ZCARD', key)
    if n == 0 then
      redis.call('ZREM', dir, b)
    elseif n < BUCKET_MIN then
      merge(base, dir, b, key, n)
    end
  end
  return removed
end

-- Moves an earlier version's plain zset `base` into buckets (once, at a claim).
local function bucket_migrate(base)
  while redis.call('EXISTS', base) == 1 do
    local rows = redis.call('ZRANGE', base, 0, 499, 'WITHSCORES')
    for j = 1, #rows, 2 do
      bucket_add(base, rows[j + 1], rows[j])
    end
    redis.call('ZREMRANGEBYRANK', base, 0, 499)
  end
end

-- Per-alert buckets: an open alert's record and its clock entry live in bucket
-- alert_bucket(alert_id) of ARGV-given `n` (records: hashes `{p}:r:<b>`; clock: zsets
-- `{p}:clock:<b>` with a directory `{p}:clock:dir` of each bucket's earliest score), found
-- from the alert id alone: a clock entry is replaced or removed without knowing its score.
-- The same rule as `store::alert_bucket` in Rust, which names the bucket for every write.
local function alert_bucket(id, n)
  local h = 0
  for j = 1, #id do
    h = (h * 31 + string.byte(id, j)) % 1000003
  end
  return h % n
end

-- Sets (score) or removes ('') an alert's clock entry in its bucket; '-' leaves it. The bucket
-- is remembered in `dirty` so that clock_settle updates the directory once per bucket.
local function clock_set(base, bucket, score, id, dirty)
  if score == '-' then
    return
  end
  local key = base .. ':' .. bucket
  if score == '' then
    redis.call('ZREM', key, id)
  else
    redis.call('ZADD', key, score, id)
  end
  if not dirty[bucket] then
    dirty[bucket] = true
    dirty[#dirty + 1] = bucket
  end
end

-- Puts each changed bucket's earliest score in the directory (or takes an emptied bucket out).
local function clock_settle(base, dirty)
  local dir = base .. ':dir'
  for _, bucket in ipairs(dirty) do
    local first = redis.call('ZRANGE', base .. ':' .. bucket, 0, 0, 'WITHSCORES')
    if first[2] then
      redis.call('ZADD', dir, first[2], bucket)
    else
      redis.call('ZREM', dir, bucket)
    end
  end
end

-- Moves an earlier version's single clock zset `base` into per-alert buckets (once, at a claim).
local function clock_migrate(base, n)
  local dirty = {}
  while redis.call('EXISTS', base) == 1 do
    local rows = redis.call('ZRANGE', base, 0, 499, 'WITHSCORES')
    for j = 1, #rows, 2 do
      clock_set(base, alert_bucket(rows[j], n), rows[j + 1], rows[j], dirty)
    end
    redis.call('ZREMRANGEBYRANK', base, 0, 499)
  end
  clock_settle(base, dirty)
end
