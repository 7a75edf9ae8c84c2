-- Grants a lock lease if the key is free, checking the epoch gate in the same atomic step.
-- KEYS[1] epoch gate of the key's slot (the epoch Redis was armed for; missing after data loss)
-- KEYS[2] lease hash {owner, epoch, ctr, hold?}, with a PEXPIRE of the lease TTL; `hold` is
--   the max_hold deadline on the server clock, past which no extend goes
-- KEYS[3] grant counter of the key's slot (reset to 0 when the slot is armed for a new epoch)
-- KEYS[4] the key's shared holders (HASH id -> "1\nowner"), KEYS[5] their expiries (ZSET id ->
-- expiry on the server clock)
-- KEYS[6] waiting-writer mark: while it lives, no shared holder is admitted
-- ARGV[1] epoch the caller believes active, ARGV[2] owner, ARGV[3] ttl_ms,
-- ARGV[4] max_hold_ms (0: no cap), ARGV[5] how long a refused writer's mark lives (0: the
-- caller does not wait)
-- KEYS[7..], ARGV[6..] for a tree key: see tree.lua
-- Returns: {'epoch', found_epoch_or_-1}
--       or {'exhausted'} when the slot used all 2^32 - 1 counters of this epoch
--       or {'granted'|'held'|'busy', owner, lease_epoch, lease_ctr, pttl_ms, hold_left_ms}
--          ('busy' on shared holders names the one expiring first, with its expiry; a tree
--          conflict adds where: blocked_at)
local refusal = epoch_refusal(KEYS[1], ARGV[1])
if refusal then return refusal end
local busy, readers = x_refusal(KEYS[2], KEYS[4], KEYS[5], ARGV[2])
if busy then
  if readers and ARGV[5] ~= '0' then redis.call('SET', KEYS[6], ARGV[2], 'PX', ARGV[5]) end
  return busy
end
local tree = tree_open(7, 6)
local now = tree and now_ms()
if tree then
  busy = tree_busy(tree, false, ARGV[2], now)
  if busy then
    if ARGV[5] ~= '0' then redis.call('SET', KEYS[6], ARGV[2], 'PX', ARGV[5]) end
    return busy
  end
end
local ctr = draw_counter(KEYS[3])
if not ctr then return {'exhausted'} end
if tree then tree_mark(tree, false, ARGV[1] .. ':' .. ctr, ARGV[2], now + tonumber(ARGV[3]), now) end
return x_grant(KEYS[2], KEYS[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ctr, now)
