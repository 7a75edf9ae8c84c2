-- Reads a subject's limits without writing: would `cost` pass now, and what is left.
-- KEYS and ARGV: as rl_check.lua. Returns the same shape (admitted: whether it would be).
local now = now_us()
local cost, fresh_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = #KEYS
local used, retry = read_all(cost, fresh_after, now)
local admitted = 1
if retry > 0 then admitted = 0 end
return with_report({admitted, retry}, n, used, now)
