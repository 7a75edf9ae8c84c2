-- Ends a live lease held by the caller. A lease of an epoch before the current one may be a
-- SQL lease that arming is copying in right now: its release is remembered, so the copy
-- cannot bring it back.
-- KEYS[1] lease hash, KEYS[2] release marker of the key
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] current epoch,
-- ARGV[5] how long the marker is kept (ms: as long as an arming may take)
-- Returns: {'done'} if released
--       or {'missed'} when no lease is live
--       or {'missed', owner, epoch, ctr, pttl_ms} of the live lease the caller does not hold
if tonumber(ARGV[2]) < tonumber(ARGV[4]) then
  mark_released(KEYS[2], ARGV[2], ARGV[3], ARGV[5])
end
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then
  redis.call('DEL', KEYS[1])
  return {'done'}
end
return missed(KEYS[1], cur)
