-- Holds units of one SKU for one user, atomically (no oversell, one live hold per user).
-- KEYS[1] inventory hash {total, avail, reserved, confirmed, ep}
-- KEYS[2] users hash: user -> hold id (live holds)
-- KEYS[3] holds hash: hold id -> "user|quantity" (live holds)
-- ARGV[1] epoch, ARGV[2] user, ARGV[3] quantity, ARGV[4] hold id
-- Returns: {'stale'} when this copy was not seeded from SQL in this epoch (or is missing)
--       or {'already', hold id} | {'out', total, avail, reserved, confirmed}
--       or {'reserved', total, avail, reserved, confirmed}
local inv = redis.call('HMGET', KEYS[1], 'ep', 'total', 'avail', 'reserved', 'confirmed')
if inv[1] ~= ARGV[1] then return {'stale'} end
local held = redis.call('HGET', KEYS[2], ARGV[2])
if held then return {'already', held} end
local qty = tonumber(ARGV[3])
local total, avail = tonumber(inv[2]), tonumber(inv[3])
local reserved, confirmed = tonumber(inv[4]), tonumber(inv[5])
if avail < qty then return {'out', total, avail, reserved, confirmed} end
redis.call('HSET', KEYS[1], 'avail', avail - qty, 'reserved', reserved + qty)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[2] .. '|' .. ARGV[3])
return {'reserved', total, avail - qty, reserved + qty, confirmed}
