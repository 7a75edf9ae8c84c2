-- Leaves at the ancestors the intentions of a tree lease just copied in from SQL (arming at
-- fail-back, or an extend made on SQL while arming), if the lease is live here: the key's
-- exclusive lease, or one of its shared holders. A lease released since leaves none.
-- KEYS[1] lease hash, KEYS[2] the key's shared holders' expiries (`…:rdexp`),
-- KEYS[3..] the tree (tree.lua)
-- ARGV[1] owner, ARGV[2] lease id "epoch:ctr", ARGV[3] '1' for a shared lease,
-- ARGV[4..] the tree (tree.lua)
-- Returns: 1 if its intentions are in place, 0 if the lease is not live here
local tree = tree_open(3, 4)
local now = now_ms()
local shared = ARGV[3] == '1'
local expiry
if shared then
  expiry = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]))
  if not expiry or expiry <= now then return 0 end
else
  local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'ctr')
  if cur[1] ~= ARGV[1] or (cur[2] .. ':' .. cur[3]) ~= ARGV[2] then return 0 end
  expiry = now + redis.call('PTTL', KEYS[1])
end
if tree then tree_mark(tree, shared, ARGV[2], ARGV[1], expiry, now) end
return 1
