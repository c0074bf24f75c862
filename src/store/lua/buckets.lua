-- Bucketed sorted sets: one ordered index kept as many small zsets, so Redis stores each as a
-- listpack (up to zset-max-listpack-entries, 128 by default) at ~member + 12 bytes per entry
-- instead of a skiplist at ~150. Prepended to the scripts that use it.
--
-- An index named `base` is a directory `base:dir` (zset: bucket id -> bound) and buckets
-- `base:<id>` (zsets of the entries). Bucket i holds the entries whose score is in
-- [bound_i, bound_i+1): every score lives in exactly one bucket, so the buckets in directory
-- order, each in its own (score, member) order, are the index in (score, member) order.
--
-- Entries are added and removed in groups, sorted by (score, member), one group per bucket: a few
-- calls per bucket touched, not per entry. A caller's entries are `items`, columns of equal length
-- (new_items): a table an entry cost a drain 1.5% of Redis's instructions, counted. A bucket that
-- would grow past BUCKET_MAX is rewritten as several, cut at score boundaries (never between equal
-- scores: a bucket of one deadline may grow, and Redis then keeps it as a skiplist); written
-- afresh, each is a listpack again. A bucket that falls below BUCKET_MIN merges with a neighbour.
-- Removal needs the entry's score, which every caller knows (an index entry's deadline is part of
-- the entry). Ids come from `base:n`.
-- Small enough that a listpack's linear search stays cheap (~1 µs), big enough that a
-- bucket's own key costs ~2 bytes an entry.
local BUCKET_MAX = 64
local BUCKET_FILL = 56
local BUCKET_MIN = 12
local GROUP_MAX = 1000 -- entries per call: a Lua call takes a bounded number of arguments

-- Entries in columns: item t's score as given (`s[t]`), member (`m[t]`), station (`st[t]`, for
-- the caller) and score as a number (`x[t]`).
local function new_items()
  return { s = {}, m = {}, st = {}, x = {} }
end

local function add_item(items, score, member, station)
  local t = #items.s + 1
  items.s[t], items.m[t], items.st[t], items.x[t] = score, member, station, tonumber(score)
end

-- The bucket that holds `score`: the last whose bound is at or below it, else the first.
local function bucket_of(dir, score)
  local b = redis.call('ZREVRANGEBYSCORE', dir, score, '-inf', 'LIMIT', 0, 1)[1]
  if b then
    return b, false
  end
  return redis.call('ZRANGE', dir, 0, 0)[1], true
end

-- Copies the entries of `from` to `to`, in chunks.
local function copy_entries(from, to)
  local offset = 0
  while true do
    local rows = redis.call('ZRANGE', from, offset, offset + GROUP_MAX - 1, 'WITHSCORES')
    if #rows == 0 then
      return
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

-- Rewrites bucket `key` as the fewest buckets of at most BUCKET_FILL entries, equal in size
-- (an overfull bucket halves; a batch appended to the last bucket becomes full ones), from
-- `rows` (member, score, ...; in score order, equal scores together in any order): its
-- entries and those that overfill it. The first keeps the bucket's id and bound. Runs of one
-- score stay whole: a bucket is cut before a run that would take it past BUCKET_MAX, so a run
-- longer than that is a bucket of its own. A tail shorter than BUCKET_MIN stays with the bucket
-- before it if they fit.
local function rewrite(base, dir, key, rows)
  redis.call('DEL', key)
  local total = #rows / 2
  local size = math.ceil(total / math.ceil(total / BUCKET_FILL))
  local out, args, n = key, {}, 0
  -- The last entry first: Redis inserts each at the listpack's head, where in score order it
  -- would walk the whole listpack for each (5% of a drain's Redis instructions, counted).
  local function flush()
    local e = #args
    while e > 0 do
      local chunk = {}
      for t = e - 1, math.max(e - 2 * GROUP_MAX + 1, 1), -2 do
        chunk[#chunk + 1] = args[t]
        chunk[#chunk + 1] = args[t + 1]
      end
      redis.call('ZADD', out, unpack(chunk))
      e = e - #chunk
    end
  end
  local j = 1
  while j <= #rows do
    local score = rows[j + 1]
    local run = 1
    while rows[j + 2 * run + 1] == score do
      run = run + 1
    end
    local rest = total - (j - 1) / 2
    local tail_fits = rest < BUCKET_MIN and n + rest <= BUCKET_MAX
    if n > 0 and (n >= size or n + run > BUCKET_MAX) and not tail_fits then
      flush()
      local id = redis.call('INCR', base .. ':n')
      -- After a run of one deadline too long for a bucket, the next bucket starts just after
      -- that deadline (scores are whole milliseconds), so entries later than the run never
      -- land in the run's bucket.
      local bound = n > BUCKET_MAX and tonumber(rows[j - 1]) + 1 or score
      redis.call('ZADD', dir, bound, id)
      out, args, n = base .. ':' .. id, {}, 0
    end
    for t = j, j + 2 * run - 1, 2 do
      args[#args + 1] = rows[t + 1]
      args[#args + 1] = rows[t]
    end
    n = n + run
    j = j + 2 * run
  end
  flush()
end

-- Whether the entries of `key` and items of scores `lo` to `hi` all have one score: a bucket no
-- rewrite can cut.
local function one_score(key, lo, hi)
  if lo ~= hi then
    return false
  end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  return tonumber(first) == lo and tonumber(last) == lo
end

-- The entries of a bucket (`rows` from ZRANGE WITHSCORES) with items[first..last] added, as
-- rows for `rewrite`; calls `on_new(t)`, if given, for each item whose member the bucket did
-- not hold (one it held moves to the item's score, as ZADD would move it).
local function merged(rows, items, first, last, on_new)
  local at = {}
  for j = 1, #rows, 2 do
    at[rows[j]] = j
  end
  local replaced = {}
  for t = first, last do
    local j = at[items.m[t]]
    if j then
      replaced[j] = true
    elseif on_new then
      on_new(t)
    end
  end
  local out, j, t = {}, 1, first
  while j <= #rows or t <= last do
    if j <= #rows and replaced[j] then
      j = j + 2
    elseif t > last or (j <= #rows and tonumber(rows[j + 1]) <= items.x[t]) then
      out[#out + 1] = rows[j]
      out[#out + 1] = rows[j + 1]
      j = j + 2
    else
      out[#out + 1] = items.m[t]
      out[#out + 1] = items.s[t]
      t = t + 1
    end
  end
  return out
end

-- Merges a small bucket (n entries) with its predecessor, or its successor with it, if they
-- fit: the later one's entries move to the earlier, whose range then covers both.
local function merge(base, dir, b, n)
  local bound = redis.call('ZSCORE', dir, b)
  local earlier, later
  local prev = redis.call('ZREVRANGEBYSCORE', dir, '(' .. bound, '-inf', 'LIMIT', 0, 1)[1]
  if prev then
    earlier, later = prev, b
  else
    earlier, later = b, redis.call('ZRANGEBYSCORE', dir, '(' .. bound, '+inf', 'LIMIT', 0, 1)[1]
  end
  local other = prev or later
  if later and redis.call('ZCARD', base .. ':' .. other) + n <= BUCKET_MAX then
    copy_entries(base .. ':' .. later, base .. ':' .. earlier)
    redis.call('DEL', base .. ':' .. later)
    redis.call('ZREM', dir, later)
  end
end

-- Calls `group(b, key, first, last)` for each run of `items` (sorted by score) that belongs in one
-- bucket. The directory is read a page of bounds at a time from an item's bucket on, and looked up
-- afresh for an item beyond the page: a batch of new alerts (one run per stage, far apart) costs a
-- few lookups, a batch spread over the index one page per DIR_PAGE bounds it crosses. `create`
-- makes the first bucket of an empty index and lowers the first bucket's bound to what goes in it
-- (so every bound orders its bucket); without it, items for no bucket are skipped. `group` may add
-- buckets within its own range, never remove any.
local DIR_PAGE = 64
local function by_bucket(base, items, create, group)
  local n, x = #items.s, items.x
  if n == 0 then
    return
  end
  local dir = base .. ':dir'
  local b, bounds, k, last_page
  -- The bucket of items[from] and the page of bounds after its score.
  local function locate(from)
    local lo = items.s[from]
    local below
    b, below = bucket_of(dir, lo)
    if not b then
      if not create then
        return false
      end
      b = redis.call('INCR', base .. ':n')
      below = true
    end
    if below and create then
      redis.call('ZADD', dir, lo, b)
    end
    bounds = redis.call('ZRANGEBYSCORE', dir, '(' .. lo, '+inf', 'WITHSCORES', 'LIMIT', 0, DIR_PAGE)
    k, last_page = 1, #bounds < 2 * DIR_PAGE
    return true
  end
  if not locate(1) then
    return
  end
  local j = 1
  while j <= n do
    local score = x[j]
    while bounds[k] and tonumber(bounds[k + 1]) <= score do
      b, k = bounds[k], k + 2
    end
    if not bounds[k] and not last_page then
      locate(j)
    end
    local upper = bounds[k + 1] and tonumber(bounds[k + 1])
    local last = j
    while last < n and last - j + 1 < GROUP_MAX and (not upper or x[last + 1] < upper) do
      last = last + 1
    end
    group(b, base .. ':' .. b, j, last)
    j = last + 1
    -- A run cut short by GROUP_MAX: its bucket may have been rewritten into several.
    if j <= n and (not upper or x[j] < upper) then
      locate(j)
    end
  end
end

-- Which of items[first..last] `key` holds (ZMSCORE), or, for one item, nil: the write's
-- own answer tells. For items mostly new (a held one's score costs a printed double).
local function held(key, first, last, items)
  if first == last then
    return nil
  end
  return redis.call('ZMSCORE', key, unpack(items.m, first, last))
end

-- ZADDs items[from..to] to `key`, the last first (see `rewrite`), GROUP_MAX a call.
local function add_run(key, items, from, to)
  local s, m = items.s, items.m
  local e = to
  while e >= from do
    local args, b = {}, math.max(e - GROUP_MAX + 1, from)
    for t = e, b, -1 do
      args[#args + 1] = s[t]
      args[#args + 1] = m[t]
    end
    redis.call('ZADD', key, unpack(args))
    e = b - 1
  end
end

-- The length of the run of items of one score from items[t] on, to `last` at most.
local function run_at(items, t, last)
  local x, run = items.x, 1
  while t + run <= last and x[t + run] == x[t] do
    run = run + 1
  end
  return run
end

-- Appends items[first..last], none of them held by the index and none before the last entry
-- of bucket `key` (n entries): fills the bucket, then writes the rest as new buckets, cut by
-- `rewrite`'s rule (at BUCKET_FILL entries, runs of one score whole, before a run that would
-- take a bucket past BUCKET_MAX, a short tail kept). Items of the bucket's last score
-- (`joins`) stay in it, which the caller checked they fit. New alerts' entries go at or after
-- each stage's last ones: this writes each once and reads none back. Read back, merged and
-- asked after, they cost 1.4 µs more a new alert, of 16.5 (benches/store.rs ARRIVAL=1, mean
-- of 4 pairs).
local function append(base, dir, key, n, items, first, last, joins)
  local out, from, t = key, first, first
  while t <= last do
    local run = run_at(items, t, last)
    local rest = last - t + 1
    local tail_fits = rest < BUCKET_MIN and n + rest <= BUCKET_MAX
    local cut = n > 0 and (n >= BUCKET_FILL or n + run > BUCKET_MAX) and not tail_fits
    if cut and not (joins and t == first) then
      add_run(out, items, from, t - 1)
      local id = redis.call('INCR', base .. ':n')
      redis.call('ZADD', dir, items.s[t], id)
      out, from, n = base .. ':' .. id, t, 0
    end
    n = n + run
    t = t + run
  end
  add_run(out, items, from, last)
end

-- Whether items[first..last] may be appended to bucket `key` of n entries (above): they come
-- after its last entry, or those of its last score fit in it with them; and whether they join
-- that score (a batch boundary falls inside a millisecond of new alerts as often as not; a run
-- of one score is never cut).
local function appends(key, n, items, first, last)
  local tail = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  tail = tail and tonumber(tail)
  local x = items.x[first]
  if not tail or tail < x then
    return true, false
  end
  return tail == x and n + run_at(items, first, last) <= BUCKET_MAX, true
end

-- ZADD to the index; calls `on_new(t)` for each member new to the index. `new`: the caller
-- knows none of the members is held (named by handles just given, names.lua), so none is
-- asked after, and it counts them itself (`on_new` nil). Items that would overfill their
-- bucket are appended (above), or merged with its entries and written afresh as full buckets
-- (not added, read back and cut: a batch appended to the index writes each entry once).
local function bucket_add_all(base, items, on_new, new)
  local dir = base .. ':dir'
  by_bucket(base, items, true, function(_, key, first, last)
    local n = redis.call('ZCARD', key)
    if n + last - first + 1 > BUCKET_MAX
        and not one_score(key, items.x[first], items.x[last]) then
      local can, joins = false, false
      if new then
        can, joins = appends(key, n, items, first, last)
      end
      if can then
        append(base, dir, key, n, items, first, last, joins)
      else
        rewrite(base, dir, key,
          merged(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'), items, first, last, on_new))
      end
      return
    end
    local had = not new and held(key, first, last, items)
    local args = {}
    for t = first, last do
      args[#args + 1] = items.s[t]
      args[#args + 1] = items.m[t]
    end
    local added = redis.call('ZADD', key, unpack(args))
    if new then
      return
    end
    for t = first, last do
      if (had and not had[t - first + 1]) or (not had and added == 1) then
        on_new(t)
      end
    end
  end)
end

-- ZREM from the index, each entry found by its score; calls `on_removed(t)` for each that
-- was there. Buckets left small merge once all are removed (merging removes buckets).
-- A ZREM an entry, whose integer reply says whether it was there: asked first with ZMSCORE,
-- Redis 7.0 printed the score of every entry held (all, as a rule) with `%.17g`, ~3,800
-- instructions each, 2.7% of a drain's.
local function bucket_rem_all(base, items, on_removed)
  local dir = base .. ':dir'
  local small = {}
  by_bucket(base, items, false, function(b, key, first, last)
    local any = false
    for t = first, last do
      if redis.call('ZREM', key, items.m[t]) == 1 then
        on_removed(t)
        any = true
      end
    end
    if any then
      small[#small + 1] = { b, key }
    end
  end)
  for _, bk in ipairs(small) do
    local n = redis.call('ZCARD', bk[2])
    if n == 0 then
      redis.call('ZREM', dir, bk[1])
    elseif n < BUCKET_MIN and redis.call('ZSCORE', dir, bk[1]) then
      merge(base, dir, bk[1], n)
    end
  end
end

-- Moves an earlier version's plain zset `base` into buckets (once, at a claim).
local function bucket_migrate(base)
  while redis.call('EXISTS', base) == 1 do
    local rows = redis.call('ZRANGE', base, 0, GROUP_MAX - 1, 'WITHSCORES')
    local items = new_items()
    for j = 1, #rows, 2 do
      add_item(items, rows[j + 1], rows[j], '')
    end
    bucket_add_all(base, items, function() end)
    redis.call('ZREMRANGEBYRANK', base, 0, GROUP_MAX - 1)
  end
end

-- Per-alert buckets: an open alert's record lives in bucket alert_bucket(alert_id) of
-- ARGV-given `n` (hashes `{p}:r:<b>`), found from the alert id alone, the same rule as
-- `store::alert_bucket` in Rust, which names the bucket for every write. Its clock entry
-- (zsets `{p}:clock:<b>` with a directory `{p}:clock:dir`) lives in its handle's range
-- (names.lua): the alerts of one range opened one after another, so a batch of new alerts sets
-- their clock a call per range. An alert without a handle (an earlier version's) keeps its
-- clock entry in its record's bucket. Either way the entry is replaced or removed knowing only
-- the alert, not its score.
--
-- The clock's directory holds, per bucket, a time no later than its earliest entry: lowered
-- (ZADD LT) when an entry is set, left as it is when one is removed or moved later: a batch
-- pays a call per clock bucket it touches and one for the directory. due_clocks.lua puts right
-- the buckets it finds early.
local function alert_bucket(id, n)
  local h = 0
  for j = 1, #id do
    h = (h * 31 + string.byte(id, j)) % 1000003
  end
  return h % n
end

-- Arguments gathered by key (`groups[key]`, `width` of them an entry), for one call a key.
local function group(groups, key, a, b)
  local args = groups[key]
  if not args then
    args = {}
    groups[key] = args
  end
  args[#args + 1] = a
  if b then
    args[#args + 1] = b
  end
end

-- Calls `command key [flag] args...` with `args` (`width` of them an entry), GROUP_MAX entries a
-- call: one call for what would take one an entry.
local function in_chunks(args, width, command, key, flag)
  for from = 1, #args, width * GROUP_MAX do
    local to = math.min(from + width * GROUP_MAX - 1, #args)
    if flag then
      redis.call(command, key, flag, unpack(args, from, to))
    else
      redis.call(command, key, unpack(args, from, to))
    end
  end
end

-- A batch's clock changes, by bucket: `set[bucket]` (score, member)*, `rem[bucket]` members.
local function clock_changes()
  return { set = {}, rem = {} }
end

-- Sets (score) or removes ('') the clock entry `member` in `bucket`; '-' leaves it. An alert is
-- in a batch once, so a bucket's removals and sets touch different members, in any order.
local function clock_set(changes, bucket, score, member)
  if score == '' then
    group(changes.rem, bucket, member)
  elseif score ~= '-' then
    group(changes.set, bucket, score, member)
  end
end

-- Writes `changes` to the clock `base`, a call per bucket and kind, and lowers the directory's
-- time of each bucket set (ZADD LT) in one call.
local function clock_write(base, changes)
  for bucket, members in pairs(changes.rem) do
    in_chunks(members, 1, 'ZREM', base .. ':' .. bucket)
  end
  local lowest = {}
  for bucket, args in pairs(changes.set) do
    -- The last first (see `rewrite`): a range's entries come in the order its alerts opened,
    -- their deadlines mostly in order (a ZADD of 62 entries: 1.8 µs an entry in that order,
    -- 1.0 in this, counted).
    local last_first, low = {}, math.huge
    for j = #args - 1, 1, -2 do
      last_first[#last_first + 1] = args[j]
      last_first[#last_first + 1] = args[j + 1]
      low = math.min(low, tonumber(args[j]))
    end
    in_chunks(last_first, 2, 'ZADD', base .. ':' .. bucket)
    lowest[#lowest + 1] = string.format('%.0f', low)
    lowest[#lowest + 1] = bucket
  end
  in_chunks(lowest, 2, 'ZADD', base .. ':dir', 'LT')
end

-- Moves an earlier version's single clock zset `base` into per-alert buckets (once, at a claim);
-- ranges_migrate (names.lua) then moves the entries named by a handle to their ranges.
local function clock_migrate(base, n)
  while redis.call('EXISTS', base) == 1 do
    local rows = redis.call('ZRANGE', base, 0, 499, 'WITHSCORES')
    local changes = clock_changes()
    for j = 1, #rows, 2 do
      clock_set(changes, alert_bucket(rows[j], n), rows[j + 1], rows[j])
    end
    clock_write(base, changes)
    redis.call('ZREMRANGEBYRANK', base, 0, 499)
  end
end
