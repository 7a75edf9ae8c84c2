-- A read-through read: 'hit'; 'refresh' with a lease (early recompute, XFetch: a fresh entry
-- is handed to one caller for reloading with a probability that grows as its expiry nears,
-- scaled by how long it took to compute); 'miss_lease' with a lease; 'stale' when another
-- caller holds the lease and ARGV[3] = 1; else 'miss_wait' with the ms until the lease ends.
-- ARGV[3] allow_stale (0|1), ARGV[4] lease_ms, ARGV[5] a uniform random in (0, 1], ARGV[6]
-- XFetch beta.
-- Returns {state, value, compressed, age_ms, token_or_wait}.
local now = now_ms()
local lease_ms = tonumber(ARGV[4])
local state, e = look(now)
local held, until_ms = lease(now)
if state == 'hit' then
  local cms = tonumber(e[7] or '0')
  local early = cms > 0 and now - cms * tonumber(ARGV[6]) * math.log(tonumber(ARGV[5])) >= tonumber(e[5])
  if early and held == 0 then
    redis.call('HINCRBY', KEYS[1], 'refreshes', 1)
    return {'refresh', e[1], e[2], num(now - tonumber(e[8])), grant(now, lease_ms)}
  end
  redis.call('HINCRBY', KEYS[1], 'hits', 1)
  return {'hit', e[1], e[2], num(now - tonumber(e[8])), ''}
end
if held == 0 then
  redis.call('HINCRBY', KEYS[1], 'misses', 1)
  return {'miss_lease', '', '', '0', grant(now, lease_ms)}
end
if state == 'stale' and ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[1], 'stale', 1)
  return {'stale', e[1], e[2], num(now - tonumber(e[8])), ''}
end
redis.call('HINCRBY', KEYS[1], 'waits', 1)
return {'miss_wait', '', '', '0', num(until_ms - now)}
