-- One partition's part of a list page (GET /v1/open, /v1/overdue): the open stages after a
-- cursor, in (deadline, member) order (the index's own order), that pass the filters.
--
-- It reads like SCAN: at most `budget` entries are examined per call, so a filter that matches
-- little costs a bounded amount whatever the index holds. The answer says how far it got (the
-- frontier: the last entry examined) and whether the index holds nothing more in range; the
-- caller continues after the frontier. Unfiltered, every entry matches and the call stops after
-- `limit`: O(log n + limit). Filtered: O(log n + budget). Read-only.
--
-- The index is bucketed (buckets.lua): a stream walks its buckets in directory order, from the
-- one that holds the cursor. Its members are short (names.lua): the filters read them decoded,
-- the order and the cursor are the short ones.
--
-- A shared entry (names.lua) stands for each of its stages where the stage's own entry would
-- be. It is kept in the `due` index of its stages' offsets, `<due>:+<after>…`, whose names the
-- set `<due>:shared` holds. The page is a merge of streams: the index itself; for each index
-- of shared entries, that index, an entry as its first stage; and for its k-th offset `after`,
-- that index shifted by `after` ms, an entry as its k-th stage after the first, named
-- `<stored member>k`. A suffix keeps the stored members' order (none is a prefix of another:
-- each ends in its one-character last part), so every stream is in (deadline, member) order,
-- the merge is, and a cursor from any stream places every stream. Every entry of every stream
-- is a stage, so the budget, the frontier and the end mean what they meant with one stream.
--
-- KEYS: 1 the index (bucketed zset: deadline ms -> `<code>\31<handle>\31<x>`),
--       2 the members' dictionary (code -> `<jurisdiction>\31<risk>\31<stage>`), 3 the id map,
--       4 the names of the indexes of shared entries (`<due>:shared`)
-- ARGV: 1 after_deadline ('' = from the start), 2 after_member (short),
--       3 max_deadline ('+inf' or ms), 4 limit, 5 budget,
--       6 risk ('' = any), 7 stage ('' = any), 8 shared ('1': read the indexes of shared entries too),
--       9 prefixed ('1': only jurisdictions starting with one of the prefixes), 10 n_prefixes,
--       11.. prefixes
-- Returns: { exhausted '1'|'0', frontier_deadline ('' = nothing examined), frontier_member,
--            (deadline, short member, member)* of the matches } (a member of the index that
--            does not decode is returned as it is stored when unfiltered, for the caller to
--            refuse, and never matches a filter)
local after_deadline, after_member, max_deadline = ARGV[1], ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local risk, stage = ARGV[6], ARGV[7]
local prefixed = ARGV[9] == '1'
local prefixes = {}
for j = 1, tonumber(ARGV[10]) do
  prefixes[j] = ARGV[10 + j]
end
local filtered = prefixed or risk ~= '' or stage ~= ''
local parts, id_of = names_decoder(KEYS[2], KEYS[3])
local shapes = {}
local function shape_of(triple)
  local shape = shapes[triple]
  if shape == nil then
    shape = shared_stages(triple) or false
    shapes[triple] = shape
  end
  return shape
end

-- a <= b in byte order, as Redis orders members of equal score. Lua's own string comparison
-- follows the server's collation locale, which need not be bytewise.
local function at_or_before(a, b)
  for j = 1, math.min(#a, #b) do
    local x, y = string.byte(a, j), string.byte(b, j)
    if x ~= y then
      return x < y
    end
  end
  return #a <= #b
end

local function ms(n)
  return string.format('%.0f', n)
end

-- `member`: the first three parts of a decoded member and a separator (all a filter reads). It
-- starts with the jurisdiction and neither it nor a prefix holds the separator, so a prefix of
-- the jurisdiction is a prefix of the member: no split for the common filter.
local function matches(member)
  if prefixed then
    local hit = false
    for _, p in ipairs(prefixes) do
      if string.sub(member, 1, #p) == p then
        hit = true
        break
      end
    end
    if not hit then
      return false
    end
  end
  if risk == '' and stage == '' then
    return true
  end
  local s1 = string.find(member, '\31', 1, true)
  local s2 = s1 and string.find(member, '\31', s1 + 1, true)
  local s3 = s2 and string.find(member, '\31', s2 + 1, true)
  if not s3 then
    return false
  end
  if risk ~= '' and string.sub(member, s1 + 1, s2 - 1) ~= risk then
    return false
  end
  if stage ~= '' and string.sub(member, s2 + 1, s3 - 1) ~= stage then
    return false
  end
  return true
end

local CHUNK = 256

-- A stream: the entries of the index `base` shifted by `after` ms, each member followed by
-- `suffix`, from the first after the cursor to the last in range. `head()` is its next entry
-- (deadline, member, stored member) without taking it, `take()` takes it.
local function stream(base, after, suffix)
  local dir = base .. ':dir'
  local hi = max_deadline == '+inf' and '+inf' or ms(tonumber(max_deadline) - after)
  local b, key, rank, stop
  local rows, at, chunk = {}, 1, math.min(CHUNK, limit)
  local function in_range()
    if hi == '+inf' then
      return redis.call('ZCARD', key)
    end
    return redis.call('ZCOUNT', key, '-inf', hi)
  end
  -- The rank of the first entry after the cursor in `key`, the bucket of its deadline `lo`
  -- (as stored). The cursor's entry is usually still there (ZRANK); if it left the index
  -- meanwhile, belongs to another partition or stream, a binary search among the entries of
  -- its deadline finds the place: O(log n) either way.
  local function start_rank(lo)
    if suffix == '' then
      local score = redis.call('ZSCORE', key, after_member)
      if score and tonumber(score) == tonumber(lo) then
        return redis.call('ZRANK', key, after_member) + 1
      end
    end
    local first = redis.call('ZCOUNT', key, '-inf', '(' .. lo)
    local last = first + redis.call('ZCOUNT', key, lo, lo)
    while first < last do
      local mid = math.floor((first + last) / 2)
      if at_or_before(redis.call('ZRANGE', key, mid, mid)[1] .. suffix, after_member) then
        first = mid + 1
      else
        last = mid
      end
    end
    return first
  end
  if after_deadline == '' then
    b = redis.call('ZRANGE', dir, 0, 0)[1]
  else
    b = bucket_of(dir, ms(tonumber(after_deadline) - after))
  end
  if b then
    key = base .. ':' .. b
    rank = after_deadline == '' and 0 or start_rank(ms(tonumber(after_deadline) - after))
    stop = in_range()
  end
  -- Reads the next rows, moving past finished buckets; false once nothing more is in range.
  local function fill()
    if not b then
      return false
    end
    while rank >= stop do
      if stop < redis.call('ZCARD', key) then
        return false
      end
      local bound = redis.call('ZSCORE', dir, b)
      b = redis.call('ZRANGEBYSCORE', dir, '(' .. bound, hi, 'LIMIT', 0, 1)[1]
      if not b then
        return false
      end
      key = base .. ':' .. b
      rank, stop = 0, in_range()
    end
    rows = redis.call('ZRANGE', key, rank, rank + math.min(chunk, stop - rank) - 1, 'WITHSCORES')
    rank, at, chunk = rank + #rows / 2, 1, math.min(CHUNK, chunk * 2)
    return #rows > 0
  end
  local s = {}
  local deadline, member
  function s.head()
    if not deadline then
      if at > #rows and not fill() then
        return nil
      end
      deadline, member = tonumber(rows[at + 1]) + after, rows[at] .. suffix
    end
    return deadline, member, rows[at]
  end
  function s.take()
    at, deadline, member = at + 2, nil, nil
  end
  return s
end

-- The streams, each with what it shows of a stored entry: the decoded member's first three
-- parts and a separator (what a filter reads), the last part, and its name (handle or id); nil
-- for an entry that does not decode, which the first stream of an index shows as it is stored
-- (nil, nil, nil, true).
local streams = {}
local function add_stream(base, after, suffix, show)
  streams[#streams + 1] = { s = stream(base, after, suffix), show = show }
end
add_stream(KEYS[1], 0, '', function(stored)
  local triple, name, last = parts(stored)
  if not triple then
    return nil, nil, nil, true
  end
  return triple .. '\31', last, name
end)
if ARGV[8] == '1' then
  for _, index in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local base = KEYS[1] .. ':' .. index
    -- Stage k of a shared entry of this index: 0 the first.
    local function show(k)
      return function(stored)
        local triple, name = parts(stored)
        local shape = triple and shape_of(triple)
        local st = shape and (k == 0 and shape.first or (shape[k] or {})[1])
        if not st then
          return nil, nil, nil, k == 0
        end
        return shape.jr .. st .. '\31', '0', name
      end
    end
    add_stream(base, 0, '', show(0))
    local k = 0
    for after in string.gmatch(index, '%+(%d+)') do
      k = k + 1
      add_stream(base, tonumber(after), tostring(k), show(k))
    end
  end
end

-- The stream whose head comes first, and its head.
local function next_stream()
  local best, bd, bm, bstored
  for _, x in ipairs(streams) do
    local d, m, stored = x.s.head()
    if d and (not best or d < bd or (d == bd and at_or_before(m, bm))) then
      best, bd, bm, bstored = x, d, m, stored
    end
  end
  return best, bd, bm, bstored
end

local out = { '0', '', '' }
local found, examined = 0, 0
local last_deadline, last_member
while found < limit and examined < budget do
  local x, deadline, member, stored = next_stream()
  if not x then
    break
  end
  x.s.take()
  examined = examined + 1
  last_deadline, last_member = deadline, member
  local shown, tail, name, raw = x.show(stored)
  local id = shown and matches(shown) and id_of(name)
  if id then
    found = found + 1
    out[#out + 1] = ms(deadline)
    out[#out + 1] = member
    out[#out + 1] = shown .. id .. '\31' .. tail
  elseif not filtered and (raw or shown) then
    -- Not this version's, or named by a handle the id map does not hold: the caller refuses it.
    found = found + 1
    out[#out + 1] = ms(deadline)
    out[#out + 1] = member
    out[#out + 1] = stored
  end
end
if last_deadline then
  out[2], out[3] = ms(last_deadline), last_member
end
if not next_stream() then
  -- Nothing more in range after the frontier: the last page is not followed by an empty one.
  out[1] = '1'
end
return out
