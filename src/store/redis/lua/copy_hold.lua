-- Before a write to a durable record's hot copy (a KV record, a session): the copy loses its
-- fields and counts one more write in flight, so readers neither serve nor reseed it until the
-- write's own seed ends the hold (or the hold expires).
-- KEYS[1] copy hash. ARGV[1] hold_ms. Returns the writes in flight.
local n = tonumber(redis.call('HGET', KEYS[1], 'p') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', n)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
