-- Shared by the lock steps of tree keys (`tree: true`; prepended after lease.lua; one atomic
-- step). Every key of one tree carries the root's hash tag, so the whole tree is one slot and
-- one counter. A lease at a node leaves an intention at each ancestor: its lease id
-- ("epoch:ctr") in the ancestor's `…:ix` (exclusive leases below) or `…:is` (shared leases
-- below) ZSET, scored by the lease's expiry on the server clock, and "owner\nnode" in the
-- ancestor's `…:iown` HASH. Intentions end with their lease: extend moves them, release drops
-- them, expired ones are purged a few at a time and by the keys' own expiry.
-- Conflicts (other owners only; an owner never blocks itself):
--   exclusive ask at N: an exclusive or shared lease at an ancestor, any intention at N;
--   shared ask at N: an exclusive lease at an ancestor, an exclusive intention at N;
--   any ask at N: a waiting writer's mark at an ancestor (an exclusive ask there that waits
--   for leases below it keeps new ones out, so a stream of short child leases cannot starve
--   it).
-- Checked in that order per ancestor, the root first: its exclusive lease, its writer mark,
-- its shared holders; then the intentions at N.
-- A tree step's extra keys follow its own, from KEYS[k]: the node's `ix`, `is`, `iown`, then
-- per ancestor, root first, its lease hash, `rd` (shared holders), `rdexp` (their expiries),
-- `ix`, `is`, `iown`, `wwait` (its waiting writer's mark). Its extra arguments, from ARGV[a]: the node's level (1 for a root, so
-- the ancestor count plus one), the node's name,
-- the ancestors' names (as their tenant named them; reported as `blocked_at`).
-- tree_open(k, a): the tree those keys and arguments describe, or nil when ARGV[a] is absent
--   or 0 (a plain key).
-- tree_busy(tree, shared, asker, now): nil, or {'busy', owner, epoch, ctr, pttl_ms, -1,
--   blocked_at} naming a lease of another owner that the ask conflicts with.
-- tree_mark(tree, shared, id, owner, expiry, now): leaves the lease's intentions.
-- tree_keep(tree, id, expiry, now): moves the lease's intentions to its new expiry.
-- tree_drop(tree, id): drops the lease's intentions.
local function tree_open(k, a)
  local n = tonumber(ARGV[a] or '0') - 1
  if n < 0 then return nil end
  local tree = {node = {ix = KEYS[k], is = KEYS[k + 1], own = KEYS[k + 2], name = ARGV[a + 1]},
                up = {}}
  for i = 1, n do
    local at = k + 3 + (i - 1) * 7
    tree.up[i] = {lock = KEYS[at], rd = KEYS[at + 1], rdexp = KEYS[at + 2], ix = KEYS[at + 3],
                  is = KEYS[at + 4], own = KEYS[at + 5], wwait = KEYS[at + 6],
                  name = ARGV[a + 1 + i]}
  end
  return tree
end

-- The first live entry of `zset` whose record in `hash` names an owner other than `asker`:
-- id, owner, expiry, and the rest of the record. `split(v)` returns owner, rest.
local function other_live(zset, hash, asker, now, split)
  local from = 0
  while true do
    local live = redis.call('ZRANGEBYSCORE', zset, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', from, 32)
    if #live == 0 then return nil end
    for i = 1, #live, 2 do
      local v = redis.call('HGET', hash, live[i])
      if v then
        local owner, rest = split(v)
        if owner ~= asker then return live[i], owner, tonumber(live[i + 1]), rest end
      end
    end
    from = from + 32
  end
end

local function reader_split(v)
  return string.sub(v, string.find(v, '\n', 1, true) + 1), nil
end

local function intent_split(v)
  local nl = string.find(v, '\n', 1, true)
  return string.sub(v, 1, nl - 1), string.sub(v, nl + 1)
end

local function busy_at(id, owner, expiry, now, at)
  local e, c = string.match(id, '^(%d+):(%d+)$')
  return {'busy', owner, tonumber(e), tonumber(c), math.max(expiry - now, 1), -1, at}
end

local function tree_busy(tree, shared, asker, now)
  for _, a in ipairs(tree.up) do
    local busy = exclusive_refusal(a.lock, asker, nil) or writer_busy(a.wwait, asker)
    if busy then
      table.insert(busy, a.name)
      return busy
    end
    if not shared then
      local id, owner, expiry = other_live(a.rdexp, a.rd, asker, now, reader_split)
      if id then return busy_at(id, owner, expiry, now, a.name) end
    end
  end
  local kinds = shared and {tree.node.ix} or {tree.node.ix, tree.node.is}
  for _, zset in ipairs(kinds) do
    local id, owner, expiry, node = other_live(zset, tree.node.own, asker, now, intent_split)
    if id then return busy_at(id, owner, expiry, now, node) end
  end
  return nil
end

-- Keeps `key` at least until `expiry`.
local function outlive(key, expiry, now)
  if redis.call('PTTL', key) < expiry - now then redis.call('PEXPIRE', key, expiry - now) end
end

local function tree_mark(tree, shared, id, owner, expiry, now)
  for _, a in ipairs(tree.up) do
    local zset = shared and a.is or a.ix
    for _, z in ipairs({a.ix, a.is}) do
      local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 8)
      for _, g in ipairs(gone) do
        redis.call('ZREM', z, g)
        redis.call('HDEL', a.own, g)
      end
    end
    redis.call('ZADD', zset, expiry, id)
    redis.call('HSET', a.own, id, owner .. '\n' .. tree.node.name)
    outlive(zset, expiry, now)
    outlive(a.own, expiry, now)
  end
end

local function tree_keep(tree, id, expiry, now)
  for _, a in ipairs(tree.up) do
    for _, z in ipairs({a.ix, a.is}) do
      if redis.call('ZADD', z, 'XX', 'CH', expiry, id) == 1 then outlive(z, expiry, now) end
    end
    outlive(a.own, expiry, now)
  end
end

local function tree_drop(tree, id)
  for _, a in ipairs(tree.up) do
    redis.call('ZREM', a.ix, id)
    redis.call('ZREM', a.is, id)
    redis.call('HDEL', a.own, id)
  end
end
