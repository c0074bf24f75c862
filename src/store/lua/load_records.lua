-- The records of some alerts, in order (false for none): each from its bucket hash, else from
-- its own key (a record too big for a bucket, a closed alert's, or one an earlier version wrote).
-- For a reader, without the handle at its head and with its names given back (names.lua); for
-- the owner, as stored: it gives the names back itself and writes the handle with the alert's
-- next record (store/names.rs). Read-only.
--
-- KEYS: 1 records (per-alert buckets: buckets.lua), 2 the names' dictionary, 3 alerts (an
--       alert's own key is `<alerts>:<alert_id>`)
-- ARGV: 1 '1' for a reader, '0' for the owner, then (alert_id, bucket)*
local load = record_names(KEYS[2])
local reader = ARGV[1] == '1'
local n = (#ARGV - 1) / 2
local out, missed, keys = {}, {}, {}
for k = 1, n do
  local id, bucket = ARGV[2 * k], ARGV[2 * k + 1]
  local record = redis.call('HGET', KEYS[1] .. ':' .. bucket, id)
  out[k] = record
  if not record then
    missed[#missed + 1] = k
    keys[#keys + 1] = KEYS[3] .. ':' .. id
  end
end
-- Those not in their buckets (a new alert's, as a rule), from their own keys: one MGET, not a
-- GET each (a call from Lua cost a new alert ~500 Redis instructions more, of ~93,000, counted).
for from = 1, #keys, 1000 do
  local to = math.min(from + 999, #keys)
  local got = redis.call('MGET', unpack(keys, from, to))
  for j = from, to do
    out[missed[j]] = got[j - from + 1]
  end
end
if reader then
  for k = 1, n do
    local record = out[k]
    if record then
      if string.byte(record, 1) == 35 then
        record = string.sub(record, string.find(record, ' ', 1, true) + 1)
      end
      out[k] = load(record)
    end
  end
end
return out
