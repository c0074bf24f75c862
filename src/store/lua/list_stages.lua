-- One partition's part of a list page (GET /v1/open, /v1/overdue): the entries of a stage index
-- after a cursor, in (deadline, member) order (the index's own order), that pass the filters.
--
-- It reads like SCAN: at most `budget` entries are examined per call, so a filter that matches
-- little costs a bounded amount whatever the index holds. The answer says how far it got (the
-- frontier: the last entry examined) and whether the index holds nothing more in range; the
-- caller continues after the frontier. Unfiltered, every entry matches and the call stops after
-- `limit`: O(log n + limit). Filtered: O(log n + budget). Read-only.
--
-- The index is bucketed (buckets.lua): the page walks its buckets in directory order, from the
-- one that holds the cursor. Its members are short (names.lua): the filters read them decoded,
-- the order and the cursor are the short ones.
--
-- KEYS: 1 the index (bucketed zset: deadline ms -> `<code>\31<handle>\31<x>`),
--       2 the members' dictionary (code -> `<jurisdiction>\31<risk>\31<stage>`), 3 the id map
-- ARGV: 1 after_deadline ('' = from the start), 2 after_member (short),
--       3 max_deadline ('+inf' or ms), 4 limit, 5 budget,
--       6 risk ('' = any), 7 stage ('' = any),
--       8 prefixed ('1': only jurisdictions starting with one of the prefixes), 9 n_prefixes,
--       10.. prefixes
-- Returns: { exhausted '1'|'0', frontier_deadline ('' = nothing examined), frontier_member,
--            (deadline, short member, member)* of the matches } (a member that does not
--            decode is returned as it is stored when unfiltered, for the caller to refuse, and
--            never matches a filter)
local base = KEYS[1]
local dir = base .. ':dir'
local after_deadline, after_member = ARGV[1], ARGV[2]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local risk, stage = ARGV[6], ARGV[7]
local prefixed = ARGV[8] == '1'
local prefixes = {}
for j = 1, tonumber(ARGV[9]) do
  prefixes[j] = ARGV[9 + j]
end
local filtered = prefixed or risk ~= '' or stage ~= ''
local parts, id_of = names_decoder(KEYS[2], KEYS[3])
-- The caller's member for a stored one, nil if it does not decode.
local function decode(short)
  local triple, name, last = parts(short)
  local id = triple and id_of(name)
  return id and (triple .. '\31' .. id .. '\31' .. last) or nil
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

-- The rank of the first entry after the cursor. The cursor's entry is usually still there
-- (ZRANK); if it left the index meanwhile, or belongs to another partition, a binary search
-- among the entries of its deadline finds the place: O(log n) either way.
local function start_rank(key)
  if after_deadline == '' then
    return 0
  end
  local score = redis.call('ZSCORE', key, after_member)
  if score and tonumber(score) == tonumber(after_deadline) then
    return redis.call('ZRANK', key, after_member) + 1
  end
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. after_deadline)
  local hi = lo + redis.call('ZCOUNT', key, after_deadline, after_deadline)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if at_or_before(redis.call('ZRANGE', key, mid, mid)[1], after_member) then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return lo
end

-- `member`: a decoded member, or its first three parts and a separator (all a filter reads). It
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

-- Entries in range are the ranks below `stop` in the bucket at hand; scores are read only for
-- what is returned (formatting every examined entry's score would cost more than matching it).
local function in_range(key)
  if ARGV[3] == '+inf' then
    return redis.call('ZCARD', key)
  end
  return redis.call('ZCOUNT', key, '-inf', ARGV[3])
end

local b, key, rank, stop
if after_deadline == '' then
  b = redis.call('ZRANGE', dir, 0, 0)[1]
else
  b = bucket_of(dir, after_deadline)
end
if b then
  key = base .. ':' .. b
  rank = start_rank(key)
  stop = in_range(key)
end

-- Moves past finished buckets; false once the index holds nothing more in range.
local function more()
  if not b then
    return false
  end
  while rank >= stop do
    if stop < redis.call('ZCARD', key) then
      return false
    end
    local bound = redis.call('ZSCORE', dir, b)
    b = redis.call('ZRANGEBYSCORE', dir, '(' .. bound, ARGV[3], 'LIMIT', 0, 1)[1]
    if not b then
      return false
    end
    key = base .. ':' .. b
    rank, stop = 0, in_range(key)
  end
  return true
end

local CHUNK = 256
local out = { '0', '', '' }
local found, examined = 0, 0
local last, last_key
while found < limit and examined < budget and more() do
  if filtered then
    local take = math.min(CHUNK, budget - examined, stop - rank)
    local rows = redis.call('ZRANGE', key, rank, rank + take - 1)
    if #rows == 0 then
      break
    end
    for _, short in ipairs(rows) do
      rank = rank + 1
      examined = examined + 1
      last, last_key = short, key
      -- The filters read the triple; the id map is read only for a match.
      local triple, name, tail = parts(short)
      local id = triple and matches(triple .. '\31') and id_of(name)
      if id then
        found = found + 1
        out[#out + 1] = redis.call('ZSCORE', key, short)
        out[#out + 1] = short
        out[#out + 1] = triple .. '\31' .. id .. '\31' .. tail
        if found >= limit then
          break
        end
      end
    end
  else
    local want = math.min(limit - found, budget - examined, stop - rank)
    local rows = redis.call('ZRANGE', key, rank, rank + want - 1, 'WITHSCORES')
    if #rows == 0 then
      break
    end
    for j = 1, #rows, 2 do
      out[#out + 1] = rows[j + 1]
      out[#out + 1] = rows[j]
      out[#out + 1] = decode(rows[j]) or rows[j]
    end
    rank = rank + #rows / 2
    found = found + #rows / 2
    examined = examined + #rows / 2
    last, last_key = rows[#rows - 1], key
  end
end
if last then
  out[2], out[3] = redis.call('ZSCORE', last_key, last), last
end
if not more() then
  -- Nothing more in range after the frontier: the last page is not followed by an empty one.
  out[1] = '1'
end
return out
