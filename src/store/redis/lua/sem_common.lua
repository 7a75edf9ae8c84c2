-- Shared by the semaphore steps (prepended to each, after token.lua; one atomic step). A
-- semaphore is four keys of one slot: KEYS[1] permits HASH id -> "count\nowner" (id is
-- "epoch:counter" of the permit's fencing token), KEYS[2] owners HASH owner -> id, KEYS[3]
-- expiries ZSET id -> expiry (server clock, ms), KEYS[4] limit.
-- Counts are always summed from the live permit records, never kept in a counter.
-- sem_now(): the server clock, ms.
-- sem_purge(now): drops every permit whose expiry has passed.
-- sem_held(): the permits held by the live records.
-- sem_keep(now): expires the four keys with the last permit, or deletes them when none is left
--   (the limit is fixed only while a permit lives).
-- sem_record(id): count, owner of permit `id`, or nil.
-- sem_reply(id, now): {id, count, owner, pttl_ms} of live permit `id`.
-- sem_missed(now), sem_drop(id, owner): below.
local function sem_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function sem_record(id)
  local v = redis.call('HGET', KEYS[1], id)
  if not v then return nil end
  local nl = string.find(v, '\n', 1, true)
  return tonumber(string.sub(v, 1, nl - 1)), string.sub(v, nl + 1)
end

local function sem_purge(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  for _, id in ipairs(gone) do
    local _, owner = sem_record(id)
    if owner and redis.call('HGET', KEYS[2], owner) == id then
      redis.call('HDEL', KEYS[2], owner)
    end
    redis.call('HDEL', KEYS[1], id)
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
end

local function sem_held()
  local held = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
    held = held + tonumber(string.sub(v, 1, string.find(v, '\n', 1, true) - 1))
  end
  return held
end

local function sem_keep(now)
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return
  end
  local left = math.max(tonumber(last[2]) - now, 1)
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], left) end
end

-- The reply describing permit `id`: {id, count, owner, pttl_ms}.
local function sem_reply(id, now)
  local count, owner = sem_record(id)
  return {id, count, owner, tonumber(redis.call('ZSCORE', KEYS[3], id)) - now}
end

-- The reply of an extend or release that found no permit `ARGV[2]` of owner `ARGV[1]`:
-- {'missed', permit…} of that permit under another owner, else of the owner's live permit,
-- else {'missed'}.
local function sem_missed(now)
  local _, owner = sem_record(ARGV[2])
  local other = owner and ARGV[2] or redis.call('HGET', KEYS[2], ARGV[1])
  if not other then return {'missed'} end
  local reply = sem_reply(other, now)
  table.insert(reply, 1, 'missed')
  return reply
end

-- Drops permit `id` (held by `owner`).
local function sem_drop(id, owner)
  redis.call('HDEL', KEYS[1], id)
  if redis.call('HGET', KEYS[2], owner) == id then redis.call('HDEL', KEYS[2], owner) end
  redis.call('ZREM', KEYS[3], id)
end
