-- Walks up to ARGV[3] of the namespace's entries in write order from stamp ARGV[4] on, and
-- forgets those that expired or were invalidated (their bytes come back to max_bytes).
-- Returns {entries forgotten, the stamp to go on from (0: the walk wrapped)}.
local now = now_ms()
local inv = tonumber(redis.call('HGET', KEYS[1], 'inv') or '0')
local batch = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[4], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local forgotten, last = 0, 0
for i = 1, #batch, 2 do
  local name, s = batch[i], tonumber(batch[i + 1])
  local ek = prefix .. 'e:' .. name
  local e = redis.call('HMGET', ek, 'su', 'tg')
  if not e[1] or now >= tonumber(e[1]) or invalidated(s, e[2], inv) then
    drop(name, ek)
    forgotten = forgotten + 1
  end
  last = s
end
if #batch < 2 * tonumber(ARGV[3]) then last = 0 end
return {forgotten, num(last)}
