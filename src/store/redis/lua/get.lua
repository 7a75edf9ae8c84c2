-- Reads a live lease.
-- KEYS[1] lease hash
-- Returns: {owner, lease_epoch, lease_ctr, pttl_ms, hold_left_ms} or nil when no lease is live
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if not cur[1] then return nil end
return lease_reply(KEYS[1], cur)
