-- Extends a live permit held by the caller.
-- KEYS[1..4] the semaphore (sem_common.lua)
-- ARGV[1] owner, ARGV[2] permit id, ARGV[3] ttl_ms
-- Returns: {'done', count} or the reply of sem_missed
local now = sem_now()
sem_purge(now)
local count, owner = sem_record(ARGV[2])
if owner == ARGV[1] then
  redis.call('ZADD', KEYS[3], 'XX', now + tonumber(ARGV[3]), ARGV[2])
  sem_keep(now)
  return {'done', count}
end
return sem_missed(now)
