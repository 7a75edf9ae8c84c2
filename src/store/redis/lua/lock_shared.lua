-- Grants a shared lease of a lock if no exclusive lease is live and no writer waits, checking
-- the epoch gate in the same atomic step. Every shared holder is a record of its own with its
-- own expiry and a token from the slot's counter, so a dead reader's lease ends at its own TTL
-- and no other reader's renewal extends it. An owner holding a live shared lease gets it back;
-- one holding the exclusive lease gets that back (it covers reading).
-- KEYS[1..4] the shared holders, semaphore-shaped (sem_common.lua): `…:rd` id -> "1\nowner",
-- `…:rdown` owner -> id, `…:rdexp` id -> expiry, `…:rdlim` (unused)
-- KEYS[5] epoch gate of the slot, KEYS[6] exclusive lease hash, KEYS[7] grant counter of the
-- slot, KEYS[8] waiting-writer mark
-- ARGV[1] epoch, ARGV[2] owner, ARGV[3] ttl_ms
-- KEYS[9..], ARGV[4..] for a tree key: see tree.lua
-- Returns: as acquire.lua: {'epoch', found} | {'exhausted'}
--       | {'granted'|'held'|'held_x'|'busy', owner, epoch, ctr, pttl_ms, hold_left_ms}
--         ('held_x': the owner's exclusive lease)
local refusal = epoch_refusal(KEYS[5], ARGV[1])
if refusal then return refusal end
local now = sem_now()
local refused = s_refusal(KEYS[6], KEYS[8], ARGV[2], now)
if refused then return refused end
local tree = tree_open(9, 4)
if tree then
  local busy = tree_busy(tree, true, ARGV[2], now)
  if busy then return busy end
end
local ctr = draw_counter(KEYS[7])
if not ctr then return {'exhausted'} end
local reply, id = s_grant(ARGV[1], ARGV[2], ARGV[3], ctr, now)
if tree then tree_mark(tree, true, id, ARGV[2], now + tonumber(ARGV[3]), now) end
return reply
