-- Extends a live lease held by the caller, never past its max_hold deadline.
-- KEYS[1] lease hash
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] ttl_ms
-- Returns: {'done', hold_left_ms} if extended
--       or {'missed'} when no lease is live
--       or {'missed', owner, epoch, ctr, pttl_ms, hold_left_ms} of the live lease: another
--          one, or the caller's own when the new expiry would pass its max_hold deadline (the
--          lease is left as it was)
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then
  local left = hold_left(KEYS[1])
  if left < 0 or tonumber(ARGV[4]) <= left then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return {'done', left}
  end
end
return missed(KEYS[1], cur)
