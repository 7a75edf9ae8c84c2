-- Ends a live permit held by the caller. A permit of an epoch before the current one may be a
-- SQL permit that arming is copying in right now: its release is remembered, so the copy
-- cannot bring it back.
-- KEYS[1..4] the semaphore (sem_common.lua), KEYS[5] release marker
-- ARGV[1] owner, ARGV[2] permit id, ARGV[3] current epoch, ARGV[4] how long the marker is kept
-- Returns: {'done', count} or the reply of sem_missed
local now = sem_now()
if tonumber(string.match(ARGV[2], '^(%d+):')) < tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[5], ARGV[2])
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
end
sem_purge(now)
local count, owner = sem_record(ARGV[2])
if owner == ARGV[1] then
  sem_drop(ARGV[2], owner)
  sem_keep(now)
  return {'done', count}
end
return sem_missed(now)
