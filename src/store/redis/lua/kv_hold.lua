-- Before a KV write: the copy loses its value and counts one more write in flight, so readers
-- neither serve nor reseed it until the write's own seed ends the hold (or the hold expires).
-- KEYS[1] copy hash. ARGV[1] hold_ms. Returns the writes in flight.
redis.call('HDEL', KEYS[1], 'ep', 'v', 'd', 'e', 't')
local n = redis.call('HINCRBY', KEYS[1], 'p', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
