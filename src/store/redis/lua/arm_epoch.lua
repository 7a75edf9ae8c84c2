-- Raises the epoch gate to a new epoch; never lowers it.
-- KEYS[1] epoch gate
-- ARGV[1] epoch
-- Returns: the gate's epoch after the call
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if cur < want then
  redis.call('SET', KEYS[1], ARGV[1])
  return want
end
return cur
