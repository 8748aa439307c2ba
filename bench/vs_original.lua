-- wrk: POST /api/chat as many distinct people, sessions named "<SESSION_PREFIX>-<n>" so that
-- every run starts with fresh conversations (bench/vs_original.py sets the prefix).
local prefix = os.getenv("SESSION_PREFIX") or "bench"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  local session = prefix .. "-" .. tostring(math.random(1, 2000))
  local body = '{"message":"Hola, necesito una mantención en Ñuñoa","sessionId":"' .. session .. '"}'
  return wrk.format(nil, "/api/chat", nil, body)
end
