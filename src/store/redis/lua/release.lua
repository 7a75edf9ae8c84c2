-- Ends a live lease held by the caller.
-- KEYS[1] lease hash
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter
-- Returns: 1 if released, 0 if the caller does not hold a live lease
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
