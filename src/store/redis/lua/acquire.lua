-- Grants a lock lease if the key is free, checking the epoch gate in the same atomic step.
-- KEYS[1] epoch gate of the key's slot (the epoch Redis was armed for; missing after data loss)
-- KEYS[2] lease hash {owner, epoch, ctr}, with a PEXPIRE of the lease TTL
-- KEYS[3] grant counter of the key's slot (reset to 0 when the slot is armed for a new epoch)
-- ARGV[1] epoch the caller believes active, ARGV[2] owner, ARGV[3] ttl_ms
-- Returns: {'epoch', found_epoch_or_-1}
--       or {'exhausted'} when the slot used all 2^32 - 1 counters of this epoch
--       or {'granted'|'held'|'busy', owner, lease_epoch, lease_ctr, pttl_ms}
local gate = redis.call('GET', KEYS[1])
if gate ~= ARGV[1] then
  return {'epoch', tonumber(gate) or -1}
end
local cur = redis.call('HMGET', KEYS[2], 'owner', 'epoch', 'ctr')
if cur[1] then
  local state = 'busy'
  if cur[1] == ARGV[2] then state = 'held' end
  return {state, cur[1], tonumber(cur[2]), tonumber(cur[3]), redis.call('PTTL', KEYS[2])}
end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= 4294967295 then
  return {'exhausted'}
end
local ctr = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'epoch', ARGV[1], 'ctr', ctr)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {'granted', ARGV[2], tonumber(ARGV[1]), ctr, tonumber(ARGV[3])}
