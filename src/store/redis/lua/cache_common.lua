-- Shared by the cache steps (prepended to each). One namespace lives in one Cluster slot
-- (hash tag {cache:<ns>}), so every step sees its entry, lease, tags and bookkeeping at once.
-- KEYS[1] meta hash (seq, inv, bytes, horizon, counters), KEYS[2] index zset (entry names by
-- write stamp), KEYS[3] sizes hash (entry name -> stored bytes), KEYS[4] entry hash,
-- KEYS[5] lease hash; ARGV[1] entry name, ARGV[2] epoch.
-- Stamps come from the namespace's one counter (seq): a write, a lease grant and an
-- invalidation are ordered by them, whatever the clocks say. Instants are Redis's TIME, in ms.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local prefix = string.sub(KEYS[1], 1, -2)

local function tag_key(tag)
  return prefix .. 't:' .. tag
end

local function num(x)
  return string.format('%.0f', x)
end

local function next_stamp()
  return redis.call('HINCRBY', KEYS[1], 'seq', 1)
end

-- Forgets entry `name` (its hash, index member and bytes).
local function drop(name, entry_key)
  local size = tonumber(redis.call('HGET', KEYS[3], name) or '0')
  redis.call('DEL', entry_key)
  redis.call('ZREM', KEYS[2], name)
  redis.call('HDEL', KEYS[3], name)
  if size > 0 then redis.call('HINCRBY', KEYS[1], 'bytes', -size) end
end

-- Whether an entry written at stamp `s` with tags `tags` ("\n"-joined) was invalidated since:
-- by the namespace, or by one of its tags.
local function invalidated(s, tags, inv)
  if s <= inv then return true end
  if tags and tags ~= '' then
    for tag in string.gmatch(tags, '[^\n]+') do
      if tonumber(redis.call('GET', tag_key(tag)) or '0') >= s then return true end
    end
  end
  return false
end

-- How the entry stands: 'miss' (absent, expired or invalidated: dropped), 'stale' (past its
-- TTL but within its stale TTL, or written under another epoch), or 'hit'; with its fields
-- {value, compressed, stamp, epoch, fresh_until, stale_until, compute_ms, written_at, tags}.
local function look(now)
  local e = redis.call('HMGET', KEYS[4], 'v', 'z', 's', 'ep', 'fu', 'su', 'cms', 'at', 'tg')
  if not e[1] then return 'miss', e end
  local inv = tonumber(redis.call('HGET', KEYS[1], 'inv') or '0')
  if invalidated(tonumber(e[3]), e[9], inv) or now >= tonumber(e[6]) then
    drop(ARGV[1], KEYS[4])
    return 'miss', e
  end
  if e[4] ~= ARGV[2] or now >= tonumber(e[5]) then return 'stale', e end
  return 'hit', e
end

-- The lease of the entry: its token and until (0, 0 when none or lapsed).
local function lease(now)
  local l = redis.call('HMGET', KEYS[5], 't', 'u')
  local t, u = tonumber(l[1] or '0'), tonumber(l[2] or '0')
  if t == 0 or now >= u then return 0, 0 end
  return t, u
end

-- Grants a lease of `lease_ms`: a token above every earlier one of the namespace (epoch in
-- the high bits, as fencing tokens), stamped so a later invalidation voids it.
local function grant(now, lease_ms)
  local s = next_stamp()
  local token = tonumber(ARGV[2]) * 4294967296 + s
  redis.call('HSET', KEYS[5], 't', num(token), 'g', s, 'u', now + lease_ms)
  redis.call('PEXPIRE', KEYS[5], lease_ms)
  redis.call('HINCRBY', KEYS[1], 'leases', 1)
  return num(token)
end
