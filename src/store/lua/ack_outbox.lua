-- Deletes published outbox entries with their escalations (`<outbox>:<entry id>`; an entry an
-- earlier version wrote holds them itself), together: an entry never outlives its escalations,
-- nor they it.
--
-- KEYS: 1 the outbox
-- ARGV: the entries' ids
for _, id in ipairs(ARGV) do
  redis.call('DEL', KEYS[1] .. ':' .. id)
end
return redis.call('XDEL', KEYS[1], unpack(ARGV))
