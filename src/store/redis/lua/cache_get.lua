-- A read: 'hit' (value, compressed, age_ms), 'stale' (only when ARGV[3] = 1) or 'miss'.
-- ARGV[3] allow_stale (0|1).
local now = now_ms()
local state, e = look(now)
if state == 'stale' and ARGV[3] ~= '1' then state = 'miss' end
redis.call('HINCRBY', KEYS[1], state == 'hit' and 'hits' or (state == 'stale' and 'stale' or 'misses'), 1)
if state == 'miss' then return {'miss'} end
return {state, e[1], e[2], num(now - tonumber(e[8]))}
