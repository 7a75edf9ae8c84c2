-- wrk script of `warden bench locks-wrk`: every request acquires a lock key nobody used before.
local prefix = os.time() .. "-" .. math.random(1, 1000000000)
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"owner":"wrk","ttl_ms":10000}'
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/locks/wrk-" .. prefix .. "-" .. n .. "/acquire")
end
