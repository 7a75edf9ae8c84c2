-- Begins an idempotency key on the hot copy: answers from a live record, or claims the key
-- with a token drawn from the slot counter (the caller then makes the claim durable in SQL,
-- which may still refuse it). Who may claim is the rule of `idem::rules::on_begin`, written
-- here so the check and the claim are one step; tests/idem_rule.rs checks the two agree.
-- KEYS[1] epoch gate of the slot, KEYS[2] record hash, KEYS[3] grant counter of the slot
-- ARGV[1] epoch, ARGV[2] now (ms), ARGV[3] fingerprint ('' = none), ARGV[4] lease_ms,
-- ARGV[5] ttl_ms, ARGV[6] correlation id, ARGV[7] traceparent (kept with a claim)
-- Record fields: st ('i' in progress | 'c' completed), ep, ctr (the token), fp, lu (lease
-- end), ex (expiry), resp (raw JSON response), cid and tp (the claiming request's correlation).
-- Returns: {'epoch', found} | {'exhausted'} | {'mismatch'}
--       | {'completed', ep, ctr, resp, cid, tp} | {'in_progress', ep, ctr, lease_until}
--       | {'started', ep, ctr}
local refusal = epoch_refusal(KEYS[1], ARGV[1])
if refusal then return refusal end
local now = tonumber(ARGV[2])
local r = redis.call('HMGET', KEYS[2], 'st', 'ep', 'ctr', 'fp', 'lu', 'ex', 'resp', 'cid', 'tp')
if r[1] and tonumber(r[6]) > now then
  if r[4] ~= '' and ARGV[3] ~= '' and r[4] ~= ARGV[3] then
    return {'mismatch'}
  end
  if r[1] == 'c' then
    return {'completed', tonumber(r[2]), tonumber(r[3]), r[7], r[8] or '', r[9] or ''}
  end
  if tonumber(r[5]) > now then
    return {'in_progress', tonumber(r[2]), tonumber(r[3]), tonumber(r[5])}
  end
end
local ctr = draw_counter(KEYS[3])
if not ctr then return {'exhausted'} end
local lease, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'st', 'i', 'ep', ARGV[1], 'ctr', ctr, 'fp', ARGV[3],
  'lu', now + lease, 'ex', now + ttl, 'resp', '', 'cid', ARGV[6], 'tp', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ttl)
return {'started', tonumber(ARGV[1]), ctr}
