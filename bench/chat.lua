-- wrk: POST /api/chat as many distinct people (one session each), like real traffic.
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local session = "bench-" .. tostring(math.random(1, 2000))
  local body = '{"message":"Hola, necesito una mantención en Ñuñoa","sessionId":"' .. session .. '"}'
  return wrk.format(nil, "/api/chat", nil, body)
end
