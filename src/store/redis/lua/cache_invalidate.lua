-- Invalidates a namespace (ARGV[3] = '') or one tag of it (ARGV[3] the tag): one stamp, O(1)
-- whatever the entries. Entries written before it are dropped when next met (a read, the
-- reclaimer, an eviction), and leases granted before it can no longer store. A tag's stamp
-- is kept while an entry or a lease older than it may exist: until the namespace's horizon
-- (the latest stale-until of its entries) or the longest lease, whichever is later.
-- ARGV[4] longest lease_ms. Returns the stamp.
local now = now_ms()
local s = next_stamp()
if ARGV[3] == '' then
  redis.call('HSET', KEYS[1], 'inv', s)
else
  local horizon = tonumber(redis.call('HGET', KEYS[1], 'horizon') or '0')
  local keep = math.max(horizon, now + tonumber(ARGV[4])) - now
  redis.call('SET', tag_key(ARGV[3]), s, 'PX', math.max(keep, 1))
end
return s
