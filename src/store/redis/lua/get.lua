-- Reads a key's live leases: the exclusive one, or the shared ones.
-- KEYS[1] lease hash, KEYS[2..5] the key's shared holders (sem_common.lua)
-- Returns: nil when no lease is live
--       or {'x', owner, lease_epoch, lease_ctr, pttl_ms, hold_left_ms}: the exclusive lease
--       or {'s', owner, lease_epoch, lease_ctr, pttl_ms, -1, …}: every live shared lease
SEM = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
if cur[1] then
  local reply = lease_reply(KEYS[1], cur)
  table.insert(reply, 1, 'x')
  return reply
end
local now = sem_now()
local live = redis.call('ZRANGEBYSCORE', SEM[3], '(' .. now, '+inf', 'WITHSCORES')
if #live == 0 then return nil end
local out = {'s'}
for i = 1, #live, 2 do
  local _, owner = sem_record(live[i])
  local e, c = string.match(live[i], '^(%d+):(%d+)$')
  for _, v in ipairs({owner or '?', tonumber(e), tonumber(c), tonumber(live[i + 1]) - now, -1}) do
    table.insert(out, v)
  end
end
return out
