-- Writes the copy of a KV record (from SQL) unless a write is in flight, or the copy is at
-- this epoch and at this version or later. A writer's seed (ARGV[7] = 1) ends its hold first.
-- KEYS[1] copy hash. ARGV: [1] epoch, [2] version, [3] value, [4] expires_at (0: none),
-- [5] tombstone (0|1), [6] ttl_ms of the copy, [7] release (0|1).
-- Returns 1 if written, 0 if not.
if ARGV[7] == '1' then
  local n = redis.call('HINCRBY', KEYS[1], 'p', -1)
  if n > 0 then return 0 end
  redis.call('HDEL', KEYS[1], 'p')
elseif tonumber(redis.call('HGET', KEYS[1], 'p') or '0') > 0 then
  return 0
end
local cur = redis.call('HMGET', KEYS[1], 'ep', 'v')
if cur[1] == ARGV[1] and tonumber(cur[2]) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'v', ARGV[2], 'd', ARGV[3], 'e', ARGV[4], 't', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
