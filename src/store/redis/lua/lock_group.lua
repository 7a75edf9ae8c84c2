-- Takes every member of a lock group whose keys share one slot, or none, in one atomic step
-- (a group across slots is taken member by member: lock/group.rs). Each member follows the
-- rules of its own mode's grant (acquire.lua, lock_shared.lua), checked for every member
-- before any is written; a member the owner already holds is answered as held.
-- KEYS[1] epoch gate of the slot, KEYS[2] grant counter of the slot; then six keys per member:
-- its lease hash, its shared holders (`…:rd`, `…:rdown`, `…:rdexp`, `…:rdlim`), its
-- waiting-writer mark
-- ARGV[1] epoch, ARGV[2] owner, ARGV[3] ttl_ms, ARGV[4..] per member: '1' shared, '0' exclusive
-- Returns: {'epoch', found} | {'exhausted'}
--       | {'busy', i, owner, epoch, ctr, pttl_ms, hold_left_ms}: member i refused, nothing taken
--       | {'granted', then per member: state ('granted'|'held'|'held_x'), owner, epoch, ctr,
--          pttl_ms, hold_left_ms}
local refusal = epoch_refusal(KEYS[1], ARGV[1])
if refusal then return refusal end
local now = now_ms()
local n = #ARGV - 3
local function member(i)
  local k = 2 + (i - 1) * 6
  SEM = {KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]}
  return KEYS[k + 1], KEYS[k + 6], ARGV[3 + i] == '1'
end
local answers, fresh = {}, 0
for i = 1, n do
  local lock, wwait, shared = member(i)
  local r
  if shared then
    r = s_refusal(lock, wwait, ARGV[2], now)
  else
    r = x_refusal(lock, SEM[1], SEM[3], ARGV[2])
  end
  if r and r[1] == 'busy' then
    table.insert(r, 2, i)
    return r
  end
  answers[i] = r or false
  if not r then fresh = fresh + 1 end
end
if tonumber(redis.call('GET', KEYS[2]) or '0') + fresh > 4294967295 then return {'exhausted'} end
local out = {'granted'}
for i = 1, n do
  local r = answers[i]
  if not r then
    local lock, wwait, shared = member(i)
    local ctr = draw_counter(KEYS[2])
    if shared then
      r = s_grant(ARGV[1], ARGV[2], ARGV[3], ctr, now)
    else
      r = x_grant(lock, wwait, ARGV[1], ARGV[2], ARGV[3], 0, ctr, now)
    end
  end
  for _, v in ipairs(r) do table.insert(out, v) end
end
return out
