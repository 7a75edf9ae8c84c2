-- Changes the total of one SKU on the hot copy unless live holds and sales exceed it.
-- KEYS[1] inventory hash
-- ARGV[1] epoch, ARGV[2] new total
-- Returns: {'stale'} | {'conflict'|'ok', total, avail, reserved, confirmed} (counts after)
local inv = redis.call('HMGET', KEYS[1], 'ep', 'total', 'reserved', 'confirmed')
if inv[1] ~= ARGV[1] then return {'stale'} end
local reserved, confirmed = tonumber(inv[3]), tonumber(inv[4])
local total = tonumber(ARGV[2])
if reserved + confirmed > total then
  return {'conflict', tonumber(inv[2]), tonumber(inv[2]) - reserved - confirmed, reserved, confirmed}
end
redis.call('HSET', KEYS[1], 'total', total, 'avail', total - reserved - confirmed)
return {'ok', total, total - reserved - confirmed, reserved, confirmed}
