-- A change stream's entries from an id (inclusive), and the id of the newest entry trimmed
-- from it (false if none was), read together so that no trim falls between. Read-only.
--
-- KEYS: 1 the stream, 2 its trim mark
-- ARGV: start, count
return {
  redis.call('GET', KEYS[2]),
  redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]),
}
