-- Gives `cost` units back to every limit of a subject, never above capacity (used >= 0):
-- a gcra level drops by cost, a log loses its newest cost entries inside the window.
-- KEYS and ARGV: as rl_check.lua. Returns the same shape, after the refund.
local now = now_us()
local cost, fresh_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = #KEYS
local used = {}
for i = 1, n do
  local alg, rate, period, cap = limit_args(i)
  local u = in_use(KEYS[i], alg, rate, period, cap, now, fresh_after)
  local back = math.min(cost, u)
  if back > 0 then
    if alg == 'g' then
      put_level(KEYS[i], u - back, rate, period, now)
    else
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
      redis.call('ZPOPMAX', KEYS[i], back)
    end
  end
  used[i] = u - back
end
return with_report({1, 0}, n, used, now)
