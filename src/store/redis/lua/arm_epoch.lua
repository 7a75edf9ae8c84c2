-- Arms one slot for a new epoch: raises its gate and restarts its grant counter. Never lowers
-- the gate, and leaves the counter alone when the gate is already at the epoch.
-- KEYS[1] epoch gate of the slot, KEYS[2] grant counter of the slot
-- ARGV[1] epoch
-- Returns: the gate's epoch after the call
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if cur < want then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], '0')
  return want
end
return cur
