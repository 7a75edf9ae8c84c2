-- Ends a live lease held by the caller: the exclusive lease or one of the key's shared leases.
-- A lease of an epoch before the current one may be a SQL lease that arming is copying in
-- right now: its release is remembered, so the copy cannot bring it back.
-- KEYS[1] lease hash, KEYS[2] release marker of the key, KEYS[3..6] the key's shared holders
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] current epoch,
-- ARGV[5] how long the marker is kept (ms: as long as an arming may take)
-- KEYS[7..], ARGV[6..] for a tree key (see tree.lua): the lease's intentions end with it
-- Returns: {'done'} if released, or the 'missed' reply of extend.lua
SEM = {KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local tree = tree_open(7, 6)
local id = ARGV[2] .. ':' .. ARGV[3]
if tonumber(ARGV[2]) < tonumber(ARGV[4]) then
  mark_released(KEYS[2], ARGV[2], ARGV[3], ARGV[5])
end
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then
  redis.call('DEL', KEYS[1])
  if tree then tree_drop(tree, id) end
  return {'done'}
end
local now = sem_now()
sem_purge(now)
if share_live(id, ARGV[1], now) then
  sem_drop(id, ARGV[1])
  sem_keep(now)
  if tree then tree_drop(tree, id) end
  return {'done'}
end
return share_missed(KEYS[1], cur, id, ARGV[1], now)
