-- Replaces the hot copy of a record with the durable one from SQL, unless the copy ranks
-- higher (a later token, or the same token further along: released < in progress <
-- completed). The copy holding token `replace` (a claim this caller drew and SQL refused or
-- never saw) is always replaced.
-- KEYS[1] record hash
-- ARGV[1] st ('i' | 'c' | 'r' = released: delete), ARGV[2] ep, ARGV[3] ctr, ARGV[4] fp,
-- ARGV[5] lease end, ARGV[6] expiry, ARGV[7] response, ARGV[8] replace ep, ARGV[9] replace
-- ctr (0 0 = none), ARGV[10] now, ARGV[11] correlation id, ARGV[12] traceparent
-- Returns: 1 if the copy now matches, 0 if a higher copy was kept
local rank = {r = 0, i = 1, c = 2}
local cur = redis.call('HMGET', KEYS[1], 'st', 'ep', 'ctr')
if cur[1] then
  local e, c = tonumber(cur[2]), tonumber(cur[3])
  local replace = e == tonumber(ARGV[8]) and c == tonumber(ARGV[9])
  local ne, nc = tonumber(ARGV[2]), tonumber(ARGV[3])
  local newer = ne > e or (ne == e and (nc > c or (nc == c and rank[ARGV[1]] >= rank[cur[1]])))
  if not replace and not newer then return 0 end
end
redis.call('DEL', KEYS[1])
local ttl = tonumber(ARGV[6]) - tonumber(ARGV[10])
if ARGV[1] == 'r' or ttl <= 0 then return 1 end
redis.call('HSET', KEYS[1], 'st', ARGV[1], 'ep', ARGV[2], 'ctr', ARGV[3], 'fp', ARGV[4],
  'lu', ARGV[5], 'ex', ARGV[6], 'resp', ARGV[7], 'cid', ARGV[11], 'tp', ARGV[12])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
