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
sem_purge(now)
local function share_reply(state, id)
  local e, c = string.match(id, '^(%d+):(%d+)$')
  local pttl = tonumber(redis.call('ZSCORE', KEYS[3], id)) - now
  return {state, ARGV[2], tonumber(e), tonumber(c), pttl, -1}
end
local mine = redis.call('HGET', KEYS[2], ARGV[2])
if mine then return share_reply('held', mine) end
local cur = redis.call('HMGET', KEYS[6], 'owner', 'epoch', 'ctr')
if cur[1] then
  local reply = lease_reply(KEYS[6], cur)
  table.insert(reply, 1, cur[1] == ARGV[2] and 'held_x' or 'busy')
  return reply
end
local writer = redis.call('GET', KEYS[8])
if writer and writer ~= ARGV[2] then
  return {'busy', writer, 0, 0, math.max(redis.call('PTTL', KEYS[8]), 1), -1}
end
local tree = tree_open(9, 4)
if tree then
  local busy = tree_busy(tree, true, ARGV[2], now)
  if busy then return busy end
end
local ctr = draw_counter(KEYS[7])
if not ctr then return {'exhausted'} end
local id = ARGV[1] .. ':' .. ctr
redis.call('HSET', KEYS[1], id, '1\n' .. ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), id)
sem_keep(now)
if tree then tree_mark(tree, true, id, ARGV[2], now + tonumber(ARGV[3]), now) end
return share_reply('granted', id)
