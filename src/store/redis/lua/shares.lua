-- Shared by the lock scripts that reach a shared holder (prepended after lease.lua and
-- sem_common.lua, with SEM set to the key's shared-holder keys; one atomic step).
-- share_live(id, owner, now): whether `owner` holds the live shared lease `id`.
-- share_missed(lease_key, cur, id, owner, now): the reply of an extend or release that found
--   neither the exclusive lease nor the shared lease `id` of the caller's: {'missed', …} of
--   shared lease `id` under another owner, else of the live exclusive lease, else of the
--   owner's other live shared lease, else {'missed'}.
local function share_live(id, owner, now)
  local _, o = sem_record(id)
  if o ~= owner then return false end
  local exp = tonumber(redis.call('ZSCORE', SEM[3], id))
  return exp ~= nil and exp > now
end

local function share_missed(lease_key, cur, id, owner, now)
  local function reply(sid, o)
    local e, c = string.match(sid, '^(%d+):(%d+)$')
    local exp = tonumber(redis.call('ZSCORE', SEM[3], sid)) or now
    return {'missed', o, tonumber(e), tonumber(c), exp - now, -1}
  end
  local _, o = sem_record(id)
  if o and o ~= owner then return reply(id, o) end
  if cur[1] then return missed(lease_key, cur) end
  local mine = redis.call('HGET', SEM[2], owner)
  if mine then return reply(mine, owner) end
  return {'missed'}
end
