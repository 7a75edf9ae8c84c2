-- Shared by every script that draws a fencing token (prepended to it; one atomic step).
-- epoch_refusal(gate_key, epoch): nil when the slot's gate is at `epoch`, else the reply
--   {'epoch', found_epoch_or_-1} to return as is.
-- draw_counter(counter_key): the slot's next counter value, or nil when this epoch has used
--   all 2^32 - 1 of them.
local function epoch_refusal(gate_key, epoch)
  local gate = redis.call('GET', gate_key)
  if gate ~= epoch then
    return {'epoch', tonumber(gate) or -1}
  end
  return nil
end

local function draw_counter(counter_key)
  if tonumber(redis.call('GET', counter_key) or '0') >= 4294967295 then
    return nil
  end
  return redis.call('INCR', counter_key)
end

