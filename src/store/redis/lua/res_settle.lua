-- Ends a live hold on the hot copy once: its units move to `confirmed` or back to stock.
-- KEYS[1] inventory hash, KEYS[2] users hash, KEYS[3] holds hash
-- ARGV[1] hold id, ARGV[2] 'confirmed' | 'released' | 'expired'
-- Returns: 1 if the hold was live here and is now settled, 0 if it was not (already settled,
-- or never seen by this copy)
local entry = redis.call('HGET', KEYS[3], ARGV[1])
if not entry then return 0 end
local sep = string.find(entry, '|', 1, true)
local user, qty = string.sub(entry, 1, sep - 1), tonumber(string.sub(entry, sep + 1))
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], user) == ARGV[1] then
  redis.call('HDEL', KEYS[2], user)
end
redis.call('HINCRBY', KEYS[1], 'reserved', -qty)
if ARGV[2] == 'confirmed' then
  redis.call('HINCRBY', KEYS[1], 'confirmed', qty)
else
  redis.call('HINCRBY', KEYS[1], 'avail', qty)
end
return 1
