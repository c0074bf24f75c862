-- Applies one partition batch atomically: applied offsets, policy snapshots, alert records, the
-- clock and overdue indexes, the count of open alerts, the escalation outbox, the Alertmanager
-- queue, and the board's stage indexes, station counters and change stream.
--
-- First the owner check, the one place both rules live:
-- - FENCED: another owner claimed the partition (its epoch is newer, or as new with another token);
-- - ROLLBACK: Redis is behind what this owner wrote (an older epoch, or a lower write sequence):
--   a replica promoted, an everysec crash, a restore, a flush. The caller rebuilds; nothing of
--   this batch is written.
-- A dictionary or handle counter that is not where the owner's codes or handles start from is a
-- ROLLBACK too.
-- Redis one write ahead of the owner is the owner's last batch, sent again because its reply was
-- lost (the response timeout, a dropped connection): the owner sends a batch until it is
-- answered, and nothing else moves the sequence. It is answered as it was the first time and
-- nothing is written twice (its escalations, the counts, the handles it gave). Further ahead is
-- a ROLLBACK: Redis holds writes the owner does not know of.
-- An empty batch only checks. Otherwise the write sequence goes up by one, and the owner hash
-- keeps the batch's outbox entry id ('last') for the answer to a batch sent again.
-- Returns the earliest score of the clock afterwards ('' if none), then the id of the outbox entry
-- that holds the batch's escalations, if it has any.
--
-- KEYS: 1 owner, 2 offsets, 3 clock (buckets by handle range: buckets.lua), 4 overdue, 5 outbox,
--       6 alertmanager queue, 7 policy snapshots, 8 due, 9 late (bucketed by deadline),
--       10 openstat, 11 events, 12 records (per-alert buckets), 13 the names' dictionary,
--       14 the id map (names.lua), 15 alerts (an alert's record when not in a bucket:
--       `<alerts>:<alert_id>`), 16 the batch's escalations, staged (below), 17.. one per day of
--       station counters
--       (the bucketed keys' names start with theirs: buckets.lua; an alert's key is not sent,
--       a key an alert cost a drain 0.6% of Redis's instructions, counted)
-- ARGV: epoch, token, seq,
--       n_escalations  (their JSON one a line, in publishing order, is not an argument: the
--         caller SETs it at KEYS[16] (its own key, by its token, with a TTL) in the same pipeline,
--         and the outbox entry takes it by RENAME to `<outbox>:<entry id>`. Redis's Lua hashes
--         every byte of every argument it is given; the escalations were 77% of a drain's
--         argument bytes, and that hash 13.6% of Redis's CPU, counted. One outbox entry a batch,
--         'n' = how many, deleted with its body once the broker acked every one),
--       n_handles, handles_from  (handles the owner gave new alerts for this batch, from the
--         owner hash's counter 'handles' = handles_from on; names.lua, store/names.rs),
--       n_codes, codes_from, (field, code, value)*  (codes the owner gave for this batch, from
--         the dictionary's counter 'n' = codes_from on: each field's code and what the code's
--         '#' entry gives back),
--       n_offsets, (topic, offset)*,
--       n_alerts, open_delta,
--         (alert_id, handle, bucket, record, flags, clock, overdue, ttl_ms)*
--         (handle: what the alert's clock and index entries name it by, '' = its id (names.lua);
--          bucket: its record's (alert_bucket), and its clock entry's if it has no handle;
--          the record as stored, its handle at its head and its names coded by the owner)
--         (flags, three letters (one argument, read by a table lookup: 0.65%, counted):
--          'b' the record goes to the alert's bucket hash, small enough to keep it a listpack,
--          'k' to its own key, which may expire; 's' Redis held a record of it, which may be in
--          the other place, 'n' it did not, 'u' the owner did not read it and took it as new
--          (below); '+' the alert opens, '-' it closes, '=' neither)
--         (clock, overdue: '-' unchanged, '' removed, else the score; ttl_ms '' = none),
--       n_notices, (json)*,
--       n_policies, (version, json)*  (a snapshot is written once: the alerts it names keep it),
--       the stage indexes' entries, as n_indexes, then for each index: its name ('d' due, 'l'
--         late, '+<after>…' the due index of shared entries of those offsets, `<due>:<name>`,
--         names.lua), the entries removed as n, (deadline, member, station)*, then those added
--         as two runs: the entries the index may hold, as above, then those named by a handle
--         this batch gave, which it does not, as n, (deadline, member)*: those are added
--         without asking which are held, and appended (buckets.lua); then how many of those
--         each station has, as n_stations, (station, count)*: the owner counts them, not the
--         script an entry (a call and an argument an entry, three a new alert)
--         (each run sorted by deadline, member; a member as stored,
--         `<code>\31<handle>\31<x>`, coded by the owner; a station `<jurisdiction>\31<stage>`,
--         a shared entry's one a stage, separated by \30; counts a list, not the list an
--         entry: 1.5% of a drain's instructions, counted),
--       n_days, day_ttl_seconds, (n_fields, (field, increment)*)*  (one per day key, in order),
--       changes ('' = none: a JSON array of [alert_id, jurisdiction]),
--       events_window_ms (entries older than this before the new one, by its id, are trimmed;
--       the newest trimmed one's id goes to `<events>:trimmed`)
--
-- An alert the owner did not read (flag 'u': the batch holds the alert itself, so the owner took
-- it as new rather than load it; a load's look into a bucket was ~1.2 µs of ~9 a new alert at
-- 1M open, counted) is checked before anything is written: its own key by one EXISTS for all,
-- its bucket by writing its record there only if none is (HSETNX, the write it needs anyway).
-- If Redis holds a record of one, the records so written are taken out again and the batch is
-- refused, HELD: the owner reads those alerts and plans the batch again.
--
-- The stage indexes change by the differences the caller computed from the records as loaded
-- (removals first, so an entry that moves within an index is removed, then added), a group of
-- entries per bucket (buckets.lua). An index of shared entries written to is named in
-- `<due>:shared`, for the lists, until a batch empties it. openstat counts what the indexes actually hold: it moves
-- only by members removed or added, once per station and batch, and a field at 0 is deleted.
-- The earliest score of the clock returned may be early (buckets.lua): a time to look again.
local ARGV, KEYS = ARGV, KEYS -- locals: a global is a table lookup at every use (1.4%, counted)
-- An alert's flags argument -> in its bucket, stored before, opens/closes/neither.
local FLAGS = {}
for _, place in ipairs({ 'b', 'k' }) do
  for _, stored in ipairs({ 's', 'n', 'u' }) do
    for _, opened in ipairs({ '+', '-', '=' }) do
      FLAGS[place .. stored .. opened] = { place == 'b', stored == 's', opened, stored == 'u' }
    end
  end
end
-- A refused batch leaves nothing behind, its staged escalations included.
local function refuse(message)
  redis.call('DEL', KEYS[16])
  return redis.error_reply(message)
end
local owner = redis.call('HMGET', KEYS[1], 'epoch', 'token', 'seq', 'handles', 'last')
local epoch, token, seq = tonumber(owner[1] or '0'), owner[2], tonumber(owner[3] or '0')
local mine, my_seq = tonumber(ARGV[1]), tonumber(ARGV[3])
if epoch > mine or (epoch == mine and token ~= ARGV[2]) then
  return refuse('FENCED epoch ' .. ARGV[1] .. ' is stale, the partition is now at ' .. epoch)
end
if epoch < mine or seq < my_seq then
  return refuse('ROLLBACK the partition is at epoch ' .. epoch .. ' sequence ' .. seq ..
    ', behind epoch ' .. ARGV[1] .. ' sequence ' .. ARGV[3])
end
if seq > my_seq + 1 then
  return refuse('ROLLBACK the partition is at epoch ' .. epoch .. ' sequence ' .. seq ..
    ', ahead of sequence ' .. ARGV[3])
end

local function answer(outbox_id)
  local first = redis.call('ZRANGE', KEYS[3] .. ':dir', 0, 0, 'WITHSCORES')
  local reply = { first[2] or '' }
  if outbox_id and outbox_id ~= '' then
    reply[2] = outbox_id
  end
  return reply
end
local n_escalations = tonumber(ARGV[4])
if seq == my_seq + 1 then
  redis.call('DEL', KEYS[16]) -- the staged escalations of a batch written before
  return answer(owner[5])
end
-- Checked before anything is written (a script is not rolled back): the caller sends the batch
-- again, escalations and all.
if n_escalations > 0 and redis.call('EXISTS', KEYS[16]) == 0 then
  return refuse('STAGED the batch\'s escalations are not at ' .. KEYS[16])
end

-- Handles and codes the owner gave are checked before anything is written.
local n_handles, handles_from = tonumber(ARGV[5]), tonumber(ARGV[6])
if n_handles > 0 and tonumber(owner[4] or '0') ~= handles_from then
  return refuse('ROLLBACK the partition has given ' .. (owner[4] or '0') ..
    ' handles, not ' .. handles_from)
end
local n, codes_from = tonumber(ARGV[7]), tonumber(ARGV[8])
if n > 0 then
  local given = redis.call('HGET', KEYS[13], 'n') or '0'
  if tonumber(given) ~= codes_from then
    return refuse('ROLLBACK the dictionary has given ' .. given .. ' codes, not ' ..
      codes_from)
  end
end
-- The alerts the owner did not read (above), from the batch's alerts at ARGV[at].
local function check_unread(at)
  local n_alerts, own, unread = tonumber(ARGV[at]), {}, {}
  local j = at + 2
  for _ = 1, n_alerts do
    local flags = FLAGS[ARGV[j + 4]]
    if flags[4] then
      own[#own + 1] = KEYS[15] .. ':' .. ARGV[j]
      unread[#unread + 1] = j
    end
    j = j + 8
  end
  if #unread == 0 then
    return true
  end
  for from = 1, #own, 1000 do
    if redis.call('EXISTS', unpack(own, from, math.min(from + 999, #own))) > 0 then
      return false
    end
  end
  local written = {}
  for _, j in ipairs(unread) do
    local records = KEYS[12] .. ':' .. ARGV[j + 2]
    local held
    if FLAGS[ARGV[j + 4]][1] then
      held = redis.call('HSETNX', records, ARGV[j], ARGV[j + 3]) == 0
      if not held then
        written[#written + 1] = { records, ARGV[j] }
      end
    else
      held = redis.call('HEXISTS', records, ARGV[j]) == 1
    end
    if held then
      for _, w in ipairs(written) do
        redis.call('HDEL', w[1], w[2])
      end
      return false
    end
  end
  return true
end
local codes_end = 9 + 3 * n
if not check_unread(codes_end + 1 + 2 * tonumber(ARGV[codes_end])) then
  return refuse('HELD Redis holds a record of an alert the batch took as new')
end

if n_handles > 0 then
  redis.call('HSET', KEYS[1], 'handles', handles_from + n_handles)
end
local i = 9
if n > 0 then
  for _ = 1, n do
    redis.call('HSET', KEYS[13], ARGV[i], ARGV[i + 1], '#' .. ARGV[i + 1], ARGV[i + 2]); i = i + 3
  end
  redis.call('HSET', KEYS[13], 'n', codes_from + n)
end
local writes = n + n_handles

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
for _ = 1, n do
  local topic, offset = ARGV[i], tonumber(ARGV[i + 1]); i = i + 2
  local applied = tonumber(redis.call('HGET', KEYS[2], topic) or '-1')
  if offset > applied then
    redis.call('HSET', KEYS[2], topic, offset)
  end
end

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
local open_delta = tonumber(ARGV[i]); i = i + 1
if open_delta ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'open', open_delta)
end
local clock, ids_set, ids_removed = clock_changes(), {}, {}
local overdue_set, overdue_removed = {}, {}
for _ = 1, n do
  local id, handle, bucket, state = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local flags = FLAGS[ARGV[i + 4]]
  local in_bucket, stored, opened, unread = flags[1], flags[2], flags[3], flags[4]
  local due, overdue, ttl = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  if handle == '' then
    clock_set(clock, bucket, due, id)
  else
    local range = handle_range(handle)
    clock_set(clock, range, due, handle)
    if opened == '+' then
      group(ids_set, range, handle, id)
    elseif opened == '-' then
      group(ids_removed, range, handle)
    end
  end
  if in_bucket then
    -- An unread alert's record is written already (check_unread).
    if not unread and redis.call('HSET', KEYS[12] .. ':' .. bucket, id, state) == 1
        and stored then
      redis.call('DEL', KEYS[15] .. ':' .. id)
    end
  else
    if ttl == '' then
      redis.call('SET', KEYS[15] .. ':' .. id, state)
    else
      redis.call('SET', KEYS[15] .. ':' .. id, state, 'PX', ttl)
    end
    if stored then
      redis.call('HDEL', KEYS[12] .. ':' .. bucket, id)
    end
  end
  if overdue == '' then
    overdue_removed[#overdue_removed + 1] = id
  elseif overdue ~= '-' then
    overdue_set[#overdue_set + 1] = overdue
    overdue_set[#overdue_set + 1] = id
  end
end
clock_write(KEYS[3], clock)
for range, args in pairs(ids_set) do
  in_chunks(args, 2, 'HSET', ids_bucket(KEYS[14], range))
end
for range, handles in pairs(ids_removed) do
  in_chunks(handles, 1, 'HDEL', ids_bucket(KEYS[14], range))
end
-- An alert is in a batch once: removals and sets touch different members, in any order.
in_chunks(overdue_removed, 1, 'ZREM', KEYS[4])
in_chunks(overdue_set, 2, 'ZADD', KEYS[4])

writes = writes + n_escalations
local outbox_id
if n_escalations > 0 then
  outbox_id = redis.call('XADD', KEYS[5], '*', 'n', n_escalations)
  local body = KEYS[5] .. ':' .. outbox_id
  redis.call('RENAME', KEYS[16], body)
  redis.call('PERSIST', body)
end

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
for _ = 1, n do
  redis.call('XADD', KEYS[6], '*', 'a', ARGV[i]); i = i + 1
end

n = tonumber(ARGV[i]); i = i + 1
writes = writes + n
for _ = 1, n do
  redis.call('HSETNX', KEYS[7], ARGV[i], ARGV[i + 1]); i = i + 2
end

local stations, station_order = {}, {}
local function count_one(station, by)
  if not stations[station] then
    stations[station] = 0
    station_order[#station_order + 1] = station
  end
  stations[station] = stations[station] + by
end
-- An entry's station, or a shared entry's, one a stage (names.lua).
local function count(station, by)
  if string.find(station, '\30', 1, true) then
    for one in string.gmatch(station, '[^\30]+') do
      count_one(one, by)
    end
  else
    count_one(station, by)
  end
end
-- One list's entries as sent: n, (deadline, member, station)*; `new`: n, (deadline, member)*.
local function entries(new)
  n = tonumber(ARGV[i]); i = i + 1
  writes = writes + n
  local items = new_items()
  local s, m, st, x = items.s, items.m, items.st, items.x
  if new then
    for t = 1, n do
      local score = ARGV[i]
      s[t], m[t], x[t] = score, ARGV[i + 1], tonumber(score)
      i = i + 2
    end
    return items
  end
  for t = 1, n do -- add_item's, inline: a call an entry was 3.6% of the scripts' time, counted
    local score = ARGV[i]
    s[t], m[t], st[t], x[t] = score, ARGV[i + 1], ARGV[i + 2], tonumber(score)
    i = i + 3
  end
  return items
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local index = ARGV[i]; i = i + 1
  local key = index == 'd' and KEYS[8] or index == 'l' and KEYS[9] or KEYS[8] .. ':' .. index
  local items = entries()
  bucket_rem_all(key, items, function(t) count(items.st[t], -1) end)
  local held = entries()
  bucket_add_all(key, held, function(t) count(held.st[t], 1) end)
  local new = entries(true)
  bucket_add_all(key, new, nil, true)
  if key ~= KEYS[8] and key ~= KEYS[9] then
    if #held.s > 0 or #new.s > 0 then
      redis.call('SADD', KEYS[8] .. ':shared', index)
    elseif #items.s > 0 and redis.call('EXISTS', key .. ':dir') == 0 then
      -- Emptied: the lists no longer read it (a reload's old deadlines leave no stream behind).
      redis.call('SREM', KEYS[8] .. ':shared', index)
    end
  end
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  count(ARGV[i], tonumber(ARGV[i + 1])); i = i + 2
end
for _, station in ipairs(station_order) do
  local by = stations[station]
  if by ~= 0 and redis.call('HINCRBY', KEYS[10], station, by) <= 0 then
    redis.call('HDEL', KEYS[10], station)
  end
end

n = tonumber(ARGV[i]); i = i + 1
local day_ttl = ARGV[i]; i = i + 1
writes = writes + n
for d = 1, n do
  local key = KEYS[16 + d]
  local fields = tonumber(ARGV[i]); i = i + 1
  for _ = 1, fields do
    redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1]); i = i + 2
  end
  redis.call('EXPIRE', key, day_ttl)
end

local changes, events_window = ARGV[i], ARGV[i + 1]; i = i + 2
if changes ~= '' then
  writes = writes + 1
  local id = redis.call('XADD', KEYS[11], '*', 'c', changes)
  -- The window by the new entry's own time (Redis's clock, whatever the processors' say). The
  -- newest entry trimmed is recorded: a reader whose place is older than it has missed some.
  local since = string.format('%.0f', tonumber(string.match(id, '^%d+')) - tonumber(events_window))
  local newest_old = redis.call('XREVRANGE', KEYS[11], '(' .. since .. '-0', '-', 'COUNT', 1)[1]
  if newest_old then
    redis.call('XTRIM', KEYS[11], 'MINID', since)
    redis.call('SET', KEYS[11] .. ':trimmed', newest_old[1])
  end
end

if writes > 0 then
  redis.call('HSET', KEYS[1], 'seq', seq + 1, 'last', outbox_id or '')
end
return answer(outbox_id)
