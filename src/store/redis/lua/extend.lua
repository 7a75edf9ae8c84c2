-- Extends a live lease held by the caller — the exclusive lease, never past its max_hold
-- deadline, or one of the key's shared leases.
-- KEYS[1] lease hash, KEYS[2..5] the key's shared holders (sem_common.lua)
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] ttl_ms
-- KEYS[6..], ARGV[5..] for a tree key (see tree.lua): the lease's intentions move with it
-- Returns: {'done', hold_left_ms} if extended
--       or {'missed'} when no lease is live
--       or {'missed', owner, epoch, ctr, pttl_ms, hold_left_ms} of a live lease: another one,
--          or the caller's own when the new expiry would pass its max_hold deadline (the
--          lease is left as it was)
SEM = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local tree = tree_open(6, 5)
local id = ARGV[2] .. ':' .. ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then
  local left = hold_left(KEYS[1])
  if left < 0 or tonumber(ARGV[4]) <= left then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    if tree then
      local now = now_ms()
      tree_keep(tree, id, now + tonumber(ARGV[4]), now)
    end
    return {'done', left}
  end
  return missed(KEYS[1], cur)
end
local now = sem_now()
sem_purge(now)
if share_live(id, ARGV[1], now) then
  redis.call('ZADD', SEM[3], 'XX', now + tonumber(ARGV[4]), id)
  sem_keep(now)
  if tree then tree_keep(tree, id, now + tonumber(ARGV[4]), now) end
  return {'done', -1}
end
return share_missed(KEYS[1], cur, id, ARGV[1], now)
