-- Extends a live lease held by the caller.
-- KEYS[1] lease hash
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] ttl_ms
-- Returns: {'done'} if extended
--       or {'missed'} when no lease is live
--       or {'missed', owner, epoch, ctr, pttl_ms} of the live lease the caller does not hold
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'done'}
end
return missed(KEYS[1], cur)
