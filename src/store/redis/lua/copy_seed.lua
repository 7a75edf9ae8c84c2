-- Writes the hot copy of a durable record (as SQL holds it) unless the copy is at this epoch
-- and at this version or later. ARGV[4] says who writes:
--   0  a reader that read SQL: not while a write is in flight;
--   1  a writer that held the copy: ends its own hold; while other writes are still in
--      flight its record is staged (kept if newest, not served), and the last writer to
--      finish leaves the newest record staged or its own, whichever is newer, live;
--   2  a writer that could not hold it beforehand (an end it learned of at commit, such as a
--      logout everywhere): writes whatever is in flight, and keeps their holds.
-- Every hold drops what was staged, and a writer's record is what SQL held after its own
-- statement, which followed its hold: so when the last hold ends, the newest record staged
-- since the latest hold is the newest SQL has.
-- KEYS[1] copy hash. ARGV: [1] epoch, [2] version, [3] ttl_ms of the copy, [4] who (0|1|2),
-- then the record's fields as name, value pairs.
-- Returns 1 if the copy now serves this record, 0 if not.
local held = tonumber(redis.call('HGET', KEYS[1], 'p') or '0')
if ARGV[4] == '1' then
  held = redis.call('HINCRBY', KEYS[1], 'p', -1)
  if held <= 0 then
    redis.call('HDEL', KEYS[1], 'p')
    held = 0
  end
elseif ARGV[4] == '0' and held > 0 then
  return 0
end
local cur = redis.call('HMGET', KEYS[1], 'ep', 'v')
if cur[1] == ARGV[1] and tonumber(cur[2]) >= tonumber(ARGV[2]) then
  if held == 0 and ARGV[4] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
  return 0
end
local ttl = tonumber(ARGV[3])
if held > 0 then ttl = math.max(ttl, redis.call('PTTL', KEYS[1])) end
redis.call('DEL', KEYS[1])
local fields = {'ep', ARGV[1], 'v', ARGV[2]}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
if held > 0 then
  fields[#fields + 1] = 'p'
  fields[#fields + 1] = held
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ttl)
if held > 0 then return 0 end
return 1
