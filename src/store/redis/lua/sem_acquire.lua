-- Grants `count` permits of a semaphore to `owner` if they fit under its limit, checking the
-- epoch gate in the same atomic step. An owner holding a live permit gets it back as it is.
-- KEYS[1..4] the semaphore (sem_common.lua), KEYS[5] epoch gate, KEYS[6] grant counter of the
-- slot
-- ARGV[1] epoch, ARGV[2] owner, ARGV[3] limit, ARGV[4] count, ARGV[5] ttl_ms
-- Returns: {'epoch', found_epoch_or_-1} | {'exhausted'}
--       or {'mismatch', limit} when live permits were granted under another limit
--       or {'full', held, ms until the next permit expires}
--       or {'granted'|'held', id, count, owner, pttl_ms, available}
local refusal = epoch_refusal(KEYS[5], ARGV[1])
if refusal then return refusal end
local now = sem_now()
sem_purge(now)
local limit, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local set = tonumber(redis.call('GET', KEYS[4]))
if set and set ~= limit and redis.call('HLEN', KEYS[1]) > 0 then
  return {'mismatch', set}
end
local held = sem_held()
local mine = redis.call('HGET', KEYS[2], ARGV[2])
if mine then
  local reply = sem_reply(mine, now)
  table.insert(reply, 1, 'held')
  table.insert(reply, limit - held)
  return reply
end
if held + count > limit then
  local next = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {'full', held, next[2] and math.max(tonumber(next[2]) - now, 1) or 1}
end
local ctr = draw_counter(KEYS[6])
if not ctr then return {'exhausted'} end
local id = ARGV[1] .. ':' .. ctr
redis.call('HSET', KEYS[1], id, count .. '\n' .. ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), id)
redis.call('SET', KEYS[4], limit)
sem_keep(now)
return {'granted', id, count, ARGV[2], tonumber(ARGV[5]), limit - held - count}
