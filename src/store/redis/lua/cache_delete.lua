-- Deletes an entry and voids its lease (a put naming it answers 'lease_invalid').
-- Returns 1.
drop(ARGV[1], KEYS[4])
redis.call('DEL', KEYS[5])
return 1
