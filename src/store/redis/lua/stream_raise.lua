-- Raises the hot copy of a stream's counters to values SQL has committed, field by field,
-- never lowering one: the copy may lag SQL (a raise lost or late), never run ahead of it.
-- KEYS[1] counters hash of the stream
-- ARGV[1] assigned, ARGV[2] last committed, ARGV[3] version, ARGV[4] idle expiry (ms)
-- Returns: 1
local fields = {'assigned', 'last', 'version'}
local cur = redis.call('HMGET', KEYS[1], fields[1], fields[2], fields[3])
for i = 1, 3 do
  local v = tonumber(ARGV[i])
  if not cur[i] or tonumber(cur[i]) < v then
    redis.call('HSET', KEYS[1], fields[i], v)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
