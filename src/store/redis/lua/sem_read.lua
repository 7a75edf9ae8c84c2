-- Reads a semaphore: its live permits, summed.
-- KEYS[1..4] the semaphore (sem_common.lua)
-- Returns: {limit_or_-1, held, holders}
local now = sem_now()
sem_purge(now)
sem_keep(now)
return {tonumber(redis.call('GET', KEYS[4])) or -1, sem_held(), redis.call('HLEN', KEYS[1])}
