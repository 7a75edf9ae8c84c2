-- Copies a permit granted by the SQL tier into Redis (arming at fail-back, or an extend made on
-- SQL while arming), unless it was released here since. The same permit already here keeps the
-- later of its two expiries; the owner's entry points at its newest permit.
-- KEYS[1..4] the semaphore (sem_common.lua), KEYS[5] release marker
-- ARGV[1] owner, ARGV[2] permit id, ARGV[3] count, ARGV[4] remaining ttl_ms, ARGV[5] limit
-- Returns: 1 if the permit is in Redis now, 0 if a release kept it out
if redis.call('SISMEMBER', KEYS[5], ARGV[2]) == 1 then return 0 end
local now = sem_now()
sem_purge(now)
local until_ms = now + tonumber(ARGV[4])
if sem_record(ARGV[2]) then
  if tonumber(redis.call('ZSCORE', KEYS[3], ARGV[2])) < until_ms then
    redis.call('ZADD', KEYS[3], 'XX', until_ms, ARGV[2])
  end
  sem_keep(now)
  return 1
end
local function parts(id)
  local e, c = string.match(id, '^(%d+):(%d+)$')
  return tonumber(e), tonumber(c)
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. '\n' .. ARGV[1])
redis.call('ZADD', KEYS[3], until_ms, ARGV[2])
local mine = redis.call('HGET', KEYS[2], ARGV[1])
local ne, nc = parts(ARGV[2])
local e, c = 0, 0
if mine then e, c = parts(mine) end
if ne > e or (ne == e and nc > c) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
redis.call('SET', KEYS[4], ARGV[5])
sem_keep(now)
return 1
