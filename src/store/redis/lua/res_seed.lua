-- Replaces the hot copy of one SKU with the durable counts and live holds from SQL, and marks
-- it as seeded in this epoch. With ARGV[6] = 'if_stale' it does nothing when the copy is
-- already at the epoch (another request seeded it first).
-- KEYS[1] inventory hash, KEYS[2] users hash, KEYS[3] holds hash
-- ARGV[1] epoch, ARGV[2] total, ARGV[3] reserved, ARGV[4] confirmed, ARGV[5] live hold count n,
-- ARGV[6] 'if_stale' | 'force', then n triples: hold id, user, quantity
-- Returns: 1 if written, 0 if left alone
if ARGV[6] == 'if_stale' and redis.call('HGET', KEYS[1], 'ep') == ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local total, reserved, confirmed = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'total', total, 'reserved', reserved,
  'confirmed', confirmed, 'avail', total - reserved - confirmed)
for i = 0, tonumber(ARGV[5]) - 1 do
  local id, user, qty = ARGV[7 + 3 * i], ARGV[8 + 3 * i], ARGV[9 + 3 * i]
  redis.call('HSET', KEYS[2], user, id)
  redis.call('HSET', KEYS[3], id, user .. '|' .. qty)
end
return 1
