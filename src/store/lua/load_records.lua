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
local out = {}
for k = 1, (#ARGV - 1) / 2 do
  local id, bucket = ARGV[2 * k], ARGV[2 * k + 1]
  local record = redis.call('HGET', KEYS[1] .. ':' .. bucket, id)
  if not record then
    record = redis.call('GET', KEYS[3] .. ':' .. id)
  end
  if record and reader then
    if string.byte(record, 1) == 35 then
      record = string.sub(record, string.find(record, ' ', 1, true) + 1)
    end
    record = load(record)
  end
  out[k] = record
end
return out
