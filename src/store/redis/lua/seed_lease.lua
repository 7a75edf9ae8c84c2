-- Copies a lease granted by the SQL tier into Redis (arming at fail-back, or an extend made on
-- SQL while arming): unless Redis holds a newer lease or the lease was released here since.
-- The same lease already here keeps the later of its two expiries.
-- KEYS[1] lease hash, KEYS[2] release marker of the key
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] remaining ttl_ms,
-- ARGV[5] ms left until its max_hold deadline (-1: no cap)
-- Returns: 1 if the lease is in Redis now, 0 if a newer lease or a release kept it out
if was_released(KEYS[2], ARGV[2], ARGV[3]) then return 0 end
local cur = redis.call('HMGET', KEYS[1], 'epoch', 'ctr')
if cur[1] then
  local e, c = tonumber(cur[1]), tonumber(cur[2])
  local ne, nc = tonumber(ARGV[2]), tonumber(ARGV[3])
  if e == ne and c == nc then
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
      redis.call('PEXPIRE', KEYS[1], ARGV[4])
    end
    return 1
  end
  if e > ne or (e == ne and c > nc) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', ARGV[2], 'ctr', ARGV[3])
if tonumber(ARGV[5]) >= 0 then
  redis.call('HSET', KEYS[1], 'hold', now_ms() + tonumber(ARGV[5]))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
