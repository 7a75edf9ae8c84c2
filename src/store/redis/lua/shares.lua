-- Shared by the lock scripts that reach a shared holder (prepended after lease.lua and
-- sem_common.lua, with SEM set to the key's shared-holder keys; one atomic step).
-- share_live(id, owner, now): whether `owner` holds the live shared lease `id`.
-- share_missed(lease_key, cur, id, owner, now): the reply of an extend or release that found
--   neither the exclusive lease nor the shared lease `id` of the caller's: {'missed', …} of
--   shared lease `id` under another owner, else of the live exclusive lease, else of the
--   owner's other live shared lease, else {'missed'}.
-- s_refusal(lock, wwait, owner, now): what answers a shared ask before any grant (expired
--   shared leases purged first): the owner's live shared lease {'held', …}, the live exclusive
--   lease {'held_x'|'busy', lease…}, a waiting writer's mark {'busy', writer, 0, 0, pttl, -1},
--   or nil when the key is free for it.
-- s_grant(epoch, owner, ttl_ms, ctr, now): adds the shared lease with counter `ctr`;
--   answers {'granted', owner, epoch, ctr, pttl_ms, -1} and its id.
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

local function share_reply(state, owner, id, now)
  local e, c = string.match(id, '^(%d+):(%d+)$')
  local pttl = tonumber(redis.call('ZSCORE', SEM[3], id)) - now
  return {state, owner, tonumber(e), tonumber(c), pttl, -1}
end

local function s_refusal(lock, wwait, owner, now)
  sem_purge(now)
  local mine = redis.call('HGET', SEM[2], owner)
  if mine then return share_reply('held', owner, mine, now) end
  return exclusive_refusal(lock, owner, 'held_x') or writer_busy(wwait, owner)
end

local function s_grant(epoch, owner, ttl_ms, ctr, now)
  local id = epoch .. ':' .. ctr
  redis.call('HSET', SEM[1], id, '1\n' .. owner)
  redis.call('HSET', SEM[2], owner, id)
  redis.call('ZADD', SEM[3], now + tonumber(ttl_ms), id)
  sem_keep(now)
  return share_reply('granted', owner, id, now), id
end
