-- Writes the hot copy of a durable record (as SQL holds it) unless a write is in flight, or
-- the copy is at this epoch and at this version or later. A writer's seed (ARGV[4] = 1) ends
-- its hold first.
-- KEYS[1] copy hash. ARGV: [1] epoch, [2] version, [3] ttl_ms of the copy, [4] release (0|1),
-- then the record's fields as name, value pairs.
-- Returns 1 if written, 0 if not.
if ARGV[4] == '1' then
  local n = redis.call('HINCRBY', KEYS[1], 'p', -1)
  if n > 0 then return 0 end
  redis.call('HDEL', KEYS[1], 'p')
elseif tonumber(redis.call('HGET', KEYS[1], 'p') or '0') > 0 then
  return 0
end
local cur = redis.call('HMGET', KEYS[1], 'ep', 'v')
if cur[1] == ARGV[1] and tonumber(cur[2]) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
local fields = {'ep', ARGV[1], 'v', ARGV[2]}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
