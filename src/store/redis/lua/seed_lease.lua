-- Copies a lease granted by the SQL tier into Redis at fail-back, unless Redis already holds
-- a lease with a token at least as large.
-- KEYS[1] lease hash
-- ARGV[1] owner, ARGV[2] lease epoch, ARGV[3] lease counter, ARGV[4] remaining ttl_ms
-- Returns: 1 if written, 0 if a newer lease was kept
local cur = redis.call('HMGET', KEYS[1], 'epoch', 'ctr')
if cur[1] then
  local e, c = tonumber(cur[1]), tonumber(cur[2])
  local ne, nc = tonumber(ARGV[2]), tonumber(ARGV[3])
  if e > ne or (e == ne and c >= nc) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', ARGV[2], 'ctr', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
