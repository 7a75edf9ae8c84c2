-- Shared by the semaphore steps (prepended to each, after token.lua; one atomic step). A
-- semaphore is four keys of one slot: KEYS[1] permits HASH id -> "count\nowner" (id is
-- "epoch:counter" of the permit's fencing token), KEYS[2] owners HASH owner -> id, KEYS[3]
-- expiries ZSET id -> expiry (server clock, ms), KEYS[4] limit.
-- Counts are always summed from the live permit records, never kept in a counter. A script
-- whose semaphore-shaped keys are not KEYS[1..4] (a lock's shared holders) sets SEM first.
-- sem_now(): the server clock, ms.
-- sem_purge(now): drops every permit whose expiry has passed.
-- sem_held(): the permits held by the live records.
-- sem_keep(now): expires the four keys with the last permit, or deletes them when none is left
--   (the limit is fixed only while a permit lives).
-- sem_record(id): count, owner of permit `id`, or nil.
-- sem_reply(id, now): {id, count, owner, pttl_ms} of live permit `id`.
-- sem_missed(now), sem_drop(id, owner): below.
local SEM = {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}

local function sem_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function sem_record(id)
  local v = redis.call('HGET', SEM[1], id)
  if not v then return nil end
  local nl = string.find(v, '\n', 1, true)
  return tonumber(string.sub(v, 1, nl - 1)), string.sub(v, nl + 1)
end

local function sem_purge(now)
  local gone = redis.call('ZRANGEBYSCORE', SEM[3], '-inf', now)
  for _, id in ipairs(gone) do
    local _, owner = sem_record(id)
    if owner and redis.call('HGET', SEM[2], owner) == id then
      redis.call('HDEL', SEM[2], owner)
    end
    redis.call('HDEL', SEM[1], id)
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', SEM[3], '-inf', now) end
end

local function sem_held()
  local held = 0
  for _, v in ipairs(redis.call('HVALS', SEM[1])) do
    held = held + tonumber(string.sub(v, 1, string.find(v, '\n', 1, true) - 1))
  end
  return held
end

local function sem_keep(now)
  local last = redis.call('ZRANGE', SEM[3], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', SEM[1], SEM[2], SEM[3], SEM[4])
    return
  end
  local left = math.max(tonumber(last[2]) - now, 1)
  for i = 1, 4 do redis.call('PEXPIRE', SEM[i], left) end
end

-- The reply describing permit `id`: {id, count, owner, pttl_ms}.
local function sem_reply(id, now)
  local count, owner = sem_record(id)
  return {id, count, owner, tonumber(redis.call('ZSCORE', SEM[3], id)) - now}
end

-- The reply of an extend or release that found no permit `ARGV[2]` of owner `ARGV[1]`:
-- {'missed', permit…} of that permit under another owner, else of the owner's live permit,
-- else {'missed'}.
local function sem_missed(now)
  local _, owner = sem_record(ARGV[2])
  local other = owner and ARGV[2] or redis.call('HGET', SEM[2], ARGV[1])
  if not other then return {'missed'} end
  local reply = sem_reply(other, now)
  table.insert(reply, 1, 'missed')
  return reply
end

-- Drops permit `id` (held by `owner`).
local function sem_drop(id, owner)
  redis.call('HDEL', SEM[1], id)
  if redis.call('HGET', SEM[2], owner) == id then redis.call('HDEL', SEM[2], owner) end
  redis.call('ZREM', SEM[3], id)
end
