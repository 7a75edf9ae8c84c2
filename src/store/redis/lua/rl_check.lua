-- One rate-limit check (G11): every limit is read first; only if all admit `cost` are they
-- all charged, so a refused check consumes nothing.
-- KEYS: one per limit, all in one slot. ARGV: see rl_state.lua.
-- Returns {admitted 0|1, retry_us, then remaining and reset_us per limit (after the check)}.
local now = now_us()
local cost, fresh_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = #KEYS
local used, retry = read_all(cost, fresh_after, now)
if retry > 0 then
  return with_report({0, retry}, n, used, now)
end
for i = 1, n do
  local alg, rate, period, cap = limit_args(i)
  if alg == 'g' then
    put_level(KEYS[i], used[i] + cost, rate, period, now)
  else
    local key = KEYS[i]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
    for c = 1, cost do
      local member, k = num(now) .. '.' .. c, 0
      while redis.call('ZADD', key, 'NX', now, member) == 0 do
        k = k + 1
        member = num(now) .. '.' .. c .. '.' .. k
      end
    end
    redis.call('PEXPIRE', key, math.ceil(period / 1000) + 1)
  end
  used[i] = used[i] + cost
end
return with_report({1, 0}, n, used, now)
