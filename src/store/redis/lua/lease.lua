-- Shared by the scripts that read a lock lease (prepended to each; one atomic step).
-- now_ms(): the Redis server's clock, ms (the clock PEXPIRE counts on).
-- hold_left(key): ms until the live lease's max_hold deadline, or -1 when it has none.
-- lease_reply(key, cur): {owner, epoch, ctr, pttl_ms, hold_left_ms} of the live lease whose
--   HMGET of 'owner', 'epoch', 'ctr' is `cur`.
-- missed(key, cur): the reply of a step that found no lease of the caller's: {'missed'} when
--   no lease is live, else {'missed', owner, epoch, ctr, pttl_ms, hold_left_ms} of the live
--   one.
-- mark_released(gone_key, epoch, ctr, ttl_ms): remembers that the lease (epoch, ctr) was
--   released, for as long as an arming may still copy it in from SQL.
-- was_released(gone_key, epoch, ctr): whether that release is remembered.
-- readers_busy(holders_key, exp_key, asker): nil when the key has no live shared holder, else
--   the 'busy' reply naming the one expiring first other than `asker` (the asker itself when
--   it is the only one): {'busy', owner, epoch, ctr, pttl_ms, -1}.
-- exclusive_refusal(lock, owner, held): nil when no exclusive lease is live, else its reply
--   {held|'busy', lease…}: `held` when `owner` holds it (nil: ignore the owner's own lease).
-- writer_busy(wwait, owner): nil unless another owner's waiting-writer mark lives, else
--   {'busy', writer, 0, 0, pttl_ms, -1}.
-- x_refusal(lock, rd, rdexp, owner): what answers an exclusive ask before any grant: the
--   owner's live lease {'held', lease…}, another's {'busy', lease…}, a live shared holder's
--   'busy' (readers_busy; then a second result, true), or nil when the key is free for it.
-- x_grant(lock, wwait, epoch, owner, ttl_ms, hold_ms, ctr, now): writes the exclusive lease
--   with counter `ctr` (and its max_hold deadline when `hold_ms` > 0; `now` may be nil), ends
--   the owner's writer mark, and answers {'granted', owner, epoch, ctr, pttl_ms, hold_left_ms}.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hold_left(key)
  local hold = redis.call('HGET', key, 'hold')
  if not hold then return -1 end
  return math.max(tonumber(hold) - now_ms(), 0)
end

local function lease_reply(key, cur)
  return {cur[1], tonumber(cur[2]), tonumber(cur[3]), redis.call('PTTL', key), hold_left(key)}
end

local function missed(key, cur)
  if not cur[1] then return {'missed'} end
  local reply = lease_reply(key, cur)
  table.insert(reply, 1, 'missed')
  return reply
end

local function mark_released(gone_key, epoch, ctr, ttl_ms)
  redis.call('SADD', gone_key, epoch .. ':' .. ctr)
  redis.call('PEXPIRE', gone_key, ttl_ms)
end

local function was_released(gone_key, epoch, ctr)
  return redis.call('SISMEMBER', gone_key, epoch .. ':' .. ctr) == 1
end

local function readers_busy(holders_key, exp_key, asker)
  if redis.call('ZCARD', exp_key) == 0 then return nil end
  local now = now_ms()
  local live = redis.call('ZRANGEBYSCORE', exp_key, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 2)
  if #live == 0 then return nil end
  local pick
  for i = 1, #live, 2 do
    local v = redis.call('HGET', holders_key, live[i]) or '1\n?'
    local owner = string.sub(v, string.find(v, '\n', 1, true) + 1)
    if not pick or (pick[2] == asker and owner ~= asker) then pick = {live[i], owner, live[i + 1]} end
  end
  local e, c = string.match(pick[1], '^(%d+):(%d+)$')
  return {'busy', pick[2], tonumber(e), tonumber(c), tonumber(pick[3]) - now, -1}
end

local function exclusive_refusal(lock, owner, held)
  local cur = redis.call('HMGET', lock, 'owner', 'epoch', 'ctr')
  if not cur[1] or (cur[1] == owner and not held) then return nil end
  local reply = lease_reply(lock, cur)
  table.insert(reply, 1, cur[1] == owner and held or 'busy')
  return reply
end

local function writer_busy(wwait, owner)
  local writer = redis.call('GET', wwait)
  if not writer or writer == owner then return nil end
  return {'busy', writer, 0, 0, math.max(redis.call('PTTL', wwait), 1), -1}
end

local function x_refusal(lock, rd, rdexp, owner)
  local reply = exclusive_refusal(lock, owner, 'held')
  if reply then return reply end
  return readers_busy(rd, rdexp, owner), true
end

local function x_grant(lock, wwait, epoch, owner, ttl_ms, hold_ms, ctr, now)
  redis.call('HSET', lock, 'owner', owner, 'epoch', epoch, 'ctr', ctr)
  local hold = tonumber(hold_ms)
  if hold > 0 then
    redis.call('HSET', lock, 'hold', (now or now_ms()) + hold)
  else
    hold = -1
  end
  redis.call('PEXPIRE', lock, ttl_ms)
  if redis.call('GET', wwait) == owner then redis.call('DEL', wwait) end
  return {'granted', owner, tonumber(epoch), ctr, tonumber(ttl_ms), hold}
end
