-- Shared by the rate-limit steps (prepended to each). Every instant is Redis's own clock
-- (TIME), in microseconds, so no client clock takes part.
-- ARGV[1] cost, ARGV[2] fresh_after_us (0, or the fail-back instant: gcra state older than it,
-- or missing, counts as full but for one unit, so no burst is released), then per limit i
-- (KEYS[i]) four values: algorithm ('g' gcra, 's' sliding_log), rate, period_us, capacity.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- A number as text, exactly (`..` would print microsecond instants with 14 digits).
local function num(x)
  return string.format('%.0f', x)
end

local function limit_args(i)
  local b = 2 + (i - 1) * 4
  return ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
end

-- Units in use now: the bucket level (gcra) or the admissions inside the window (log; a log
-- keeps its entries across a fail-back, so it needs no fresh start).
local function in_use(key, alg, rate, period, cap, now, fresh_after)
  if alg == 'g' then
    local s = redis.call('HMGET', key, 'l', 't')
    local level, at = tonumber(s[1]), tonumber(s[2])
    if level == nil or at < fresh_after then
      if fresh_after > 0 then return math.max(cap - 1, 0) end
      return 0
    end
    local elapsed = now - at
    if elapsed < 0 then elapsed = 0 end -- Redis's clock stepped back: no drain, no debt
    level = level - elapsed * rate / period
    if level < 0 then level = 0 end
    return level
  end
  return redis.call('ZCOUNT', key, '(' .. num(now - period), '+inf')
end

-- When `need` more units fit (0 if they do now), in microseconds.
local function wait_for(key, alg, rate, period, cap, used, need, now)
  local over = used + need - cap
  if over <= 0 then return 0 end
  if alg == 'g' then return math.ceil(over * period / rate) end
  local e = redis.call('ZRANGEBYSCORE', key, '(' .. num(now - period), '+inf', 'WITHSCORES',
    'LIMIT', math.ceil(over) - 1, 1)
  if e[2] == nil then return period end
  return math.max(1, tonumber(e[2]) + period - now)
end

-- Units still free, and microseconds until the limit is fully free again.
local function report(key, alg, rate, period, cap, used, now)
  local remaining = math.floor(cap - used)
  if remaining < 0 then remaining = 0 end
  if remaining > cap then remaining = cap end
  local reset = 0
  if alg == 'g' then
    reset = math.ceil(used * period / rate)
  elseif used > 0 then
    local last = redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. num(now - period), 'WITHSCORES',
      'LIMIT', 0, 1)
    if last[2] ~= nil then reset = math.max(0, tonumber(last[2]) + period - now) end
  end
  return remaining, reset
end

-- Writes a gcra level as of now; the TTL outlives the debt (rounded up, never to zero).
local function put_level(key, level, rate, period, now)
  if level <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'l', string.format('%.17g', level), 't', now)
  redis.call('PEXPIRE', key, math.ceil(level * period / rate / 1000) + 1)
end

local function with_report(head, n, used, now)
  local out = head
  for i = 1, n do
    local alg, rate, period, cap = limit_args(i)
    local remaining, reset = report(KEYS[i], alg, rate, period, cap, used[i], now)
    out[#out + 1] = remaining
    out[#out + 1] = reset
  end
  return out
end

-- Reads every limit for `cost` at `now`: units in use per limit, and when the cost would fit
-- (0: it fits now).
local function read_all(cost, fresh_after, now)
  local used, retry = {}, 0
  for i = 1, #KEYS do
    local alg, rate, period, cap = limit_args(i)
    used[i] = in_use(KEYS[i], alg, rate, period, cap, now, fresh_after)
    retry = math.max(retry, wait_for(KEYS[i], alg, rate, period, cap, used[i], cost, now))
  end
  return used, retry
end
