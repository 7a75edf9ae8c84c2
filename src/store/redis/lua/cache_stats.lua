-- The namespace's counters and size: {hits, misses, stale, waits, leases, refreshes,
-- evictions, bytes, entries, raw bytes stored, bytes kept after compression}.
local m = redis.call('HMGET', KEYS[1], 'hits', 'misses', 'stale', 'waits', 'leases',
  'refreshes', 'evictions', 'bytes')
local out = {}
for i = 1, 8 do out[i] = tonumber(m[i] or '0') end
out[9] = redis.call('ZCARD', KEYS[2])
local r = redis.call('HMGET', KEYS[1], 'raw', 'kept')
out[10] = tonumber(r[1] or '0')
out[11] = tonumber(r[2] or '0')
return out
