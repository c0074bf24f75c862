-- Short stage index members. What the caller writes and reads (store.rs's IndexEntry) is
-- `<jurisdiction>\31<risk>\31<stage>\31<alert_id>\31<x>`; what the bucketed indexes hold is
-- `<code>\31<alert_id>\31<x>`, the code standing for `<jurisdiction>\31<risk>\31<stage>`: the
-- part every open stage of one station, risk and stage repeats, and otherwise half a member.
-- Prepended to the scripts that write or read the indexes.
--
-- The dictionary (a hash per partition) maps each triple to its code and '#' .. code back,
-- and counts codes in field 'n'. Codes are base 62, assigned once and never reused, so a
-- member once written always decodes. Index order is by (deadline, stored member): the same
-- total order in every partition, which is all a page's merge and its cursor need.
local DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

local function base62(n)
  local s = ''
  repeat
    local d = n % 62
    s = string.sub(DIGITS, d + 1, d + 1) .. s
    n = (n - d) / 62
  until n == 0
  return s
end

-- The positions of the separators in `member`, up to five.
local function separators(member)
  local at, pos = {}, 0
  while #at < 5 do
    pos = string.find(member, '\31', pos + 1, true)
    if not pos then
      break
    end
    at[#at + 1] = pos
  end
  return at
end

-- Stored member for a caller's member: `encode(member, create)`. A triple without a code
-- gets one when `create`; otherwise (a removal) the member is returned as it came, which is
-- also how an earlier version's member is found. Anything not of five parts is kept as is.
local function names_encoder(key)
  local cache = {}
  return function(member, create)
    local at = separators(member)
    if #at ~= 4 then
      return member
    end
    local triple = string.sub(member, 1, at[3] - 1)
    local code = cache[triple]
    if not code then
      code = redis.call('HGET', key, triple)
      if not code then
        if not create then
          return member
        end
        code = base62(redis.call('HINCRBY', key, 'n', 1))
        redis.call('HSET', key, triple, code, '#' .. code, triple)
      end
      cache[triple] = code
    end
    return code .. string.sub(member, at[3])
  end
end

-- The caller's member for a stored one: `decode(stored)`, nil for a code the dictionary does
-- not hold. An earlier version's member (five parts) is already the caller's.
local function names_decoder(key)
  local cache = {}
  return function(stored)
    local at = separators(stored)
    if #at == 4 then
      return stored
    end
    if #at ~= 2 then
      return nil
    end
    local code = string.sub(stored, 1, at[1] - 1)
    local triple = cache[code]
    if not triple then
      triple = redis.call('HGET', key, '#' .. code)
      if not triple then
        return nil
      end
      cache[code] = triple
    end
    return triple .. string.sub(stored, at[1])
  end
end

-- Rewrites an earlier version's members of the bucketed index `base` in short form (once, at
-- a claim). Scores stay, so every entry stays in its bucket.
local function names_migrate(base, key)
  local encode = names_encoder(key)
  for _, b in ipairs(redis.call('ZRANGE', base .. ':dir', 0, -1)) do
    local bucket = base .. ':' .. b
    local rows = redis.call('ZRANGE', bucket, 0, -1, 'WITHSCORES')
    for j = 1, #rows, 2 do
      local short = encode(rows[j], true)
      if short ~= rows[j] then
        redis.call('ZREM', bucket, rows[j])
        redis.call('ZADD', bucket, rows[j + 1], short)
      end
    end
  end
end
