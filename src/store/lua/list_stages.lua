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

-- A position in the list: (deadline, member); a <= b.
local function le(ad, am, bd, bm)
  if ad ~= bd then
    return ad < bd
  end
  return at_or_before(am, bm)
end

-- The streams, each with what it shows of a stored entry (`show`): the decoded member's first
-- three parts and a separator (what a filter reads), the last part, and its name (handle or
-- id); nil for an entry that does not decode, which the first stream of an index shows as it
-- is stored (nil, nil, nil, true).
local specs = {}
local function add_stream(base, after, suffix, show)
  specs[#specs + 1] = { base = base, after = after, suffix = suffix, show = show }
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

-- What the streams examined, over all of them.
local examined = 0
-- Most entries a stream examines at a time before the others get their turn.
local STRIDE = 64

-- A stream: the entries of the index `base` shifted by `after` ms, each member followed by
-- `suffix`, from the first after the cursor to the last in range. `head()` is the match it
-- holds, if any (deadline, member, the member the caller reads); `advance(n)` examines entries
-- until it holds a match, has examined `n` without one, or has none left (`done`); `reach()`
-- is the last entry it examined, as a position (the cursor before it examined any); `take()`
-- takes the match. Unfiltered, every entry is a match and scores come with the entries;
-- filtered, a score is read only for a match and for the last entry of an advance that found
-- none (formatting every examined entry's score would cost more than matching it).
local function stream(spec)
  local base, after, suffix, show = spec.base, spec.after, spec.suffix, spec.show
  local dir = base .. ':dir'
  local step = filtered and 1 or 2
  local hi = max_deadline == '+inf' and '+inf' or ms(tonumber(max_deadline) - after)
  local b, key, rank, stop
  local rows, at, chunk = {}, 1, math.min(CHUNK, math.max(8, math.ceil(limit / #specs)))
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
    local to = rank + math.min(chunk, stop - rank) - 1
    if filtered then
      rows = redis.call('ZRANGE', key, rank, to)
    else
      rows = redis.call('ZRANGE', key, rank, to, 'WITHSCORES')
    end
    rank, at, chunk = rank + #rows / step, 1, math.min(CHUNK, chunk * 2)
    return #rows > 0
  end
  local s = { done = false }
  -- The match held: deadline, member, what the caller reads, the stored member, its score.
  local hd, hm, hread, hstored, hscore
  -- The last entry examined: stored member, its bucket, its score (nil: not read yet); the
  -- reach as a position once read.
  local last, last_key, last_score
  local rd, rm = after_deadline ~= '' and tonumber(after_deadline) or nil, after_member
  function s.advance(n)
    local skipped = 0
    while not hd and skipped < n do
      if at > #rows and not fill() then
        s.done = true
        break
      end
      local stored = rows[at]
      local shown, tail, name, raw = show(stored)
      local id = shown and matches(shown) and id_of(name)
      if id or (not filtered and (raw or shown)) then
        local score = filtered and redis.call('ZSCORE', key, stored) or rows[at + 1]
        -- Not this version's, or named by a handle the id map does not hold: the caller
        -- refuses it.
        hd, hm = tonumber(score) + after, stored .. suffix
        hread, hstored, hscore = id and (shown .. id .. '\31' .. tail) or stored, stored, score
      else
        skipped, examined = skipped + 1, examined + 1
        last, last_key, last_score = stored, key, not filtered and rows[at + 1] or nil
        rd = nil
        at = at + step
      end
    end
  end
  function s.head()
    return hd, hm, hread
  end
  -- Takes the match: its deadline as the caller reads it (as Redis wrote it when not shifted).
  -- Unfiltered, the next entry is the next match: it is held at once.
  function s.take()
    examined = examined + 1
    last, last_key, last_score, rd, rm = hstored, key, hscore, hd, hm
    local deadline = after == 0 and hscore or ms(hd)
    hd = nil
    at = at + step
    if not filtered then
      s.advance(1)
    end
    return deadline
  end
  function s.reach()
    if not rd and last then
      rd = tonumber(last_score or redis.call('ZSCORE', last_key, last)) + after
      rm = last .. suffix
    end
    return rd, rm
  end
  function s.started()
    return last ~= nil or hd ~= nil
  end
  function s.more()
    return hd ~= nil or at <= #rows or fill()
  end
  return s
end
local streams = {}
for j, spec in ipairs(specs) do
  streams[j] = stream(spec)
end

-- The page: the streams' matches merged. A match is taken once every stream that holds none
-- has examined past it; until then the stream that has examined least goes on, STRIDE entries
-- at a time, so the streams move through the list together and the budget is spent where the
-- page is. Every stream examines at least one entry, so the frontier moves. When the budget
-- ends, every match held is behind a stream that has not examined up to it.
local out = { '0', '', '' }
local found, last_d, last_m = 0, nil, nil
while found < limit do
  local held, hd, hm
  local behind, bd, bm
  for _, x in ipairs(streams) do
    if not x.done then
      local d, m = x.head()
      if d then
        if not held or le(d, m, hd, hm) then
          held, hd, hm = x, d, m
        end
      else
        local rd, rm = x.reach()
        if not behind or not rd or (bd and le(rd, rm, bd, bm)) then
          behind, bd, bm = x, rd, rm
        end
      end
    end
  end
  if held and (not behind or (bd and le(hd, hm, bd, bm))) then
    -- Taking a match examines nothing more: one that can be taken is, whatever the budget.
    local _, _, read = held.head()
    out[#out + 1] = held.take()
    out[#out + 1] = hm
    out[#out + 1] = read
    found, last_d, last_m = found + 1, hd, hm
  elseif behind and (examined < budget or not behind.started()) then
    behind.advance(math.max(1, math.min(STRIDE, budget - examined)))
  else
    break
  end
end

-- The frontier: every stream has examined everything up to it.
local fd, fm = last_d, last_m
local bounded, more = false, false
for _, x in ipairs(streams) do
  if not x.done then
    local rd, rm = x.reach()
    if x.head() then
      -- It has examined all before its match, which is past the last taken, if any was; if
      -- none was, a stream that has not examined up to that match bounds the frontier.
      if not last_d then
        rd = nil
      elseif not rd or le(rd, rm, last_d, last_m) then
        rd, rm = last_d, last_m
      end
    end
    if rd and (not bounded or le(rd, rm, fd, fm)) then
      fd, fm, bounded = rd, rm, true
    end
    more = more or x.more()
  end
end
if not bounded then
  -- Every stream ran out: the frontier is the furthest any got.
  for _, x in ipairs(streams) do
    local rd, rm = x.reach()
    if rd and (not fd or le(fd, fm, rd, rm)) then
      fd, fm = rd, rm
    end
  end
end
if fd then
  out[2], out[3] = ms(fd), fm
end
if not more then
  -- Nothing more in range after the frontier: the last page is not followed by an empty one.
  out[1] = '1'
end
return out
