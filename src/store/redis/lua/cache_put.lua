-- Stores an entry, unless it names a lease that is not the entry's live one, or one granted
-- before a delete, or before an invalidation of the namespace or of one of the entry's tags
-- ('lease_invalid': nothing stored). Then evicts the namespace's oldest entries while it holds
-- more than max_bytes.
-- KEYS[6..] the entry's tag keys. ARGV[3] lease token ('' for none), ARGV[4] value, ARGV[5]
-- compressed (0|1), ARGV[6] raw bytes, ARGV[7] ttl_ms, ARGV[8] stale_ttl_ms, ARGV[9]
-- compute_ms, ARGV[10] tags ("\n"-joined), ARGV[11] max_bytes, ARGV[12] longest lease_ms.
-- Returns {'stored', evicted} or {'lease_invalid'}.
local now = now_ms()
if ARGV[3] ~= '' then
  local l = redis.call('HMGET', KEYS[5], 't', 'g', 'u')
  local g = tonumber(l[2] or '0')
  local valid = l[1] == ARGV[3] and now < tonumber(l[3] or '0')
  if valid and g <= tonumber(redis.call('HGET', KEYS[1], 'inv') or '0') then valid = false end
  for i = 6, #KEYS do
    if valid and tonumber(redis.call('GET', KEYS[i]) or '0') >= g then valid = false end
  end
  -- Refused or used, the lease is spent: the next caller may take a new one at once.
  if l[1] == ARGV[3] then redis.call('DEL', KEYS[5]) end
  if not valid then return {'lease_invalid'} end
end
drop(ARGV[1], KEYS[4])
local s = next_stamp()
local ttl, stale = tonumber(ARGV[7]), tonumber(ARGV[8])
local size = string.len(ARGV[4])
redis.call('HSET', KEYS[4], 'v', ARGV[4], 'z', ARGV[5], 's', s, 'ep', ARGV[2],
  'fu', now + ttl, 'su', now + ttl + stale, 'cms', ARGV[9], 'at', now, 'tg', ARGV[10])
redis.call('PEXPIRE', KEYS[4], ttl + stale)
redis.call('ZADD', KEYS[2], s, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], size)
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', size)
redis.call('HINCRBY', KEYS[1], 'raw', tonumber(ARGV[6]))
redis.call('HINCRBY', KEYS[1], 'kept', size)
local horizon = tonumber(redis.call('HGET', KEYS[1], 'horizon') or '0')
if now + ttl + stale > horizon then redis.call('HSET', KEYS[1], 'horizon', now + ttl + stale) end
local evicted = 0
local max = tonumber(ARGV[11])
while bytes > max do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 or oldest[1] == ARGV[1] then break end
  drop(oldest[1], prefix .. 'e:' .. oldest[1])
  evicted = evicted + 1
  bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes'))
end
if evicted > 0 then redis.call('HINCRBY', KEYS[1], 'evictions', evicted) end
return {'stored', evicted}
