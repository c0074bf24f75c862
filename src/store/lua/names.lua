-- Short members. What the caller writes and reads as a stage index member (store.rs's
-- IndexEntry) is `<jurisdiction>\31<risk>\31<stage>\31<alert_id>\31<x>`; what the bucketed
-- indexes hold is `<code>\31<handle>\31<x>`:
-- - the code stands for `<jurisdiction>\31<risk>\31<stage>`, the part every open stage of one
--   station, risk and stage repeats. The dictionary (a hash per partition) maps each triple to
--   its code and '#' .. code back, and counts codes in field 'n'. The owner gives the codes and
--   handles of what it writes (store/names.rs) and sends members as they are stored; the batch
--   script writes the new codes. Codes repeat across partitions; handles do not, so no two
--   partitions store the same member.
-- - the handle stands for the alert id, which an open alert would otherwise repeat in each of
--   its index entries and its clock entry: '#<partition>.<n>', n in base 62 from the owner's
--   field 'handles', given by the owner when this version first writes the alert's record and
--   kept at its head ('<handle> <record>': the owner's load reads it, a reader's drops it).
--   The id map (hashes `{p}:ids:<the handle's range>`) maps it back while the alert is open.
--   An alert whose record an earlier version wrote has no handle: its id stands for itself, in
--   its clock and index entries alike, for the rest of its life.
-- - a handle's range is the handle but its last character: 62 handles given one after another,
--   so a batch of new alerts writes its id map entries and clock entries (buckets.lua) a call
--   per range, not a call per alert each.
-- Codes and handles are never reused and never hold the separator, and '#' is in no alert id.
-- Index order is by (deadline, stored member): the same total order in every partition, which
-- is all a page's merge and its cursor need. Prepended to the scripts that use them.
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

-- A handle's range: the id map's bucket of the handle, and the clock's (buckets.lua).
local function handle_range(handle)
  return string.sub(handle, 1, -2)
end

-- The id map's bucket of a range, and of a handle.
local function ids_bucket(base, range)
  return base .. ':' .. range
end

local function ids_key(base, handle)
  return ids_bucket(base, handle_range(handle))
end

-- A caller's member: its `<jurisdiction>\31<risk>\31<stage>`, alert id and last part; nil
-- for anything else. One match, in C.
local LONG = '^([^\31]*\31[^\31]*\31[^\31]*)\31([^\31]*)\31([^\31]*)$'
-- A stored member: its code, handle (or id) and last part.
local SHORT = '^([^\31]*)\31([^\31]*)\31([^\31]*)$'

-- Stored member for an earlier version's long member, its alert id as it is (an alert an
-- earlier version wrote has no handle): `encode(member)`, giving a triple without a code one.
-- Anything not of five parts is kept as is. (The owner codes what it writes itself,
-- store/names.rs; this is for the claim's migration.)
local function names_encoder(key)
  local cache = {}
  return function(member)
    local triple, id, last = string.match(member, LONG)
    if not triple then
      return member
    end
    local code = cache[triple]
    if not code then
      code = redis.call('HGET', key, triple)
      if not code then
        code = base62(redis.call('HINCRBY', key, 'n', 1))
        redis.call('HSET', key, triple, code, '#' .. code, triple)
      end
      cache[triple] = code
    end
    return code .. '\31' .. id .. '\31' .. last
  end
end

-- Shared entries (store.rs, IndexEntry::shared): an alert whose open stages are all still
-- quiet has one `due` entry, `<code>\31<handle>\31v`, scored by its earliest stage's deadline,
-- whose triple's stage part lists its stages, each after the first with how long after it it
-- is due: `visit\30meet+3600000\30feedback+18000000`. It is kept in the `due` index of those
-- offsets, `<due>:+3600000+18000000`, whose names the set `<due>:shared` holds: a list reads
-- each such index once a stage (list_stages.lua).
-- A shared entry's triple read: { jr = '<jurisdiction>\31<risk>\31', first = its first
-- stage, [k] = { stage, after } }; nil for a triple that is not one.
local function shared_stages(triple)
  local jr, stages = string.match(triple, '^([^\31]*\31[^\31]*\31)([^\31]*)$')
  if not jr or not string.find(stages, '\30', 1, true) then
    return nil
  end
  local shape = { jr = jr }
  for part in string.gmatch(stages, '[^\30]+') do
    if not shape.first then
      shape.first = part
    else
      local stage, after = string.match(part, '^([^+]*)%+(%d+)$')
      if not stage then
        return nil
      end
      shape[#shape + 1] = { stage, tonumber(after) }
    end
  end
  return shape
end
-- Reads stored members: returns `parts(stored)`, the triple, name (handle or id) and last part
-- (nil when the code does not resolve), and `id_of(name)`, the alert id a name stands for (nil
-- for a handle the id map no longer holds). Separate, so that a filter reads the triple only
-- and the id map is read for what a page returns. An earlier version's long member is read as
-- it is.
local function names_decoder(key, ids)
  local triples, names = {}, {}
  local function parts(stored)
    local code, name, last = string.match(stored, SHORT)
    if not code then
      return string.match(stored, LONG)
    end
    local triple = triples[code]
    if not triple then
      triple = redis.call('HGET', key, '#' .. code)
      if not triple then
        return nil
      end
      triples[code] = triple
    end
    return triple, name, last
  end
  local function id_of(name)
    if string.byte(name, 1) ~= 35 then
      return name
    end
    local id = names[name]
    if id == nil then
      id = redis.call('HGET', ids_key(ids, name), name)
      names[name] = id
    end
    return id or nil
  end
  return parts, id_of
end

-- Rewrites an earlier version's members of the bucketed index `base` in short form (once, at
-- a claim), their alert ids as they are: those alerts have no handle. Scores stay, so every
-- entry stays in its bucket.
local function names_migrate(base, key)
  local encode = names_encoder(key)
  for _, b in ipairs(redis.call('ZRANGE', base .. ':dir', 0, -1)) do
    local bucket = base .. ':' .. b
    local rows = redis.call('ZRANGE', bucket, 0, -1, 'WITHSCORES')
    for j = 1, #rows, 2 do
      local short = encode(rows[j])
      if short ~= rows[j] then
        redis.call('ZREM', bucket, rows[j])
        redis.call('ZADD', bucket, rows[j + 1], short)
      end
    end
  end
end

-- Moves to the handles' ranges what an earlier version kept elsewhere (once, at a claim): the id
-- map, which it bucketed by a handle's last two characters (`.` and a digit, or two digits:
-- a handle is `#<partition>.<digits>`), and the clock entries named by a handle, which it kept
-- in the alert id's bucket (alert_bucket). Entries named by an alert id stay where they are.
-- Needs buckets.lua, prepended before.
local function ranges_migrate(clock, ids)
  local hashes = {}
  local function moved(suffix)
    local key = ids .. ':' .. suffix
    local rows = redis.call('HGETALL', key)
    for j = 1, #rows, 2 do
      group(hashes, ids_key(ids, rows[j]), rows[j], rows[j + 1])
    end
    if #rows > 0 then
      redis.call('DEL', key)
    end
  end
  for a = 1, #DIGITS do
    local x = string.sub(DIGITS, a, a)
    moved('.' .. x)
    for b = 1, #DIGITS do
      moved(x .. string.sub(DIGITS, b, b))
    end
  end
  for key, args in pairs(hashes) do
    in_chunks(args, 2, 'HSET', key)
  end
  local dir, changes = clock .. ':dir', clock_changes()
  for _, bucket in ipairs(redis.call('ZRANGE', dir, 0, -1)) do
    local key = clock .. ':' .. bucket
    local gone = {}
    local rows = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for j = 1, #rows, 2 do
      if string.byte(rows[j], 1) == 35 then
        clock_set(changes, handle_range(rows[j]), rows[j + 1], rows[j])
        gone[#gone + 1] = rows[j]
      end
    end
    if #gone > 0 then
      in_chunks(gone, 1, 'ZREM', key)
      if redis.call('EXISTS', key) == 0 then
        redis.call('ZREM', dir, bucket)
      end
    end
  end
  clock_write(clock, changes)
end

-- Record names (record.rs, version 2). A record is stored as `\178<code>\31<code>…\30<body>`,
-- each of its names coded by the owner (store/names.rs); the load gives the names back. The
-- dictionary is the members' one, a name under '=' .. name (so that no name is taken for the
-- counter 'n' or a code's '#' entry) and '#' .. code back. Returns `load(record)`; a code the
-- dictionary no longer holds loads as a record that begins with \191 (record.rs refuses it
-- as corrupt).
local function record_names(key)
  local names = {}
  local function name_of(code)
    local name = names[code]
    if name == nil then
      name = redis.call('HGET', key, '#' .. code)
      names[code] = name
    end
    return name or nil
  end
  local function map(record, f)
    if string.byte(record, 1) ~= 178 then
      return record
    end
    local cut = string.find(record, '\30', 2, true)
    if not cut or cut == 2 then
      return record
    end
    local out = {}
    for part in string.gmatch(string.sub(record, 2, cut - 1), '[^\31]+') do
      local mapped = f(part)
      if not mapped then
        return '\191' .. string.sub(record, 2)
      end
      out[#out + 1] = mapped
    end
    return '\178' .. table.concat(out, '\31') .. string.sub(record, cut)
  end
  return function(record)
    return map(record, name_of)
  end
end
