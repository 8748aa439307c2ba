-- wrk: POST pre-signed WhatsApp webhooks, each with its own message id (bench/webhook.py
-- writes them, one "signature<TAB>body" per line). Threads start at different lines.
local lines = {}
local next_line = 1

function setup(thread)
  thread:set("offset", tostring(#threads_seen + 1))
  table.insert(threads_seen, thread)
end
threads_seen = {}

function init(args)
  for line in io.lines(os.getenv("WEBHOOK_REQUESTS")) do
    table.insert(lines, line)
  end
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  local offset = tonumber(wrk.thread:get("offset") or "1")
  next_line = math.floor((offset - 1) * #lines / threads) + 1
end

function request()
  local line = lines[next_line]
  next_line = next_line % #lines + 1
  local tab = line:find("\t", 1, true)
  local headers = {["Content-Type"] = "application/json",
                   ["X-Hub-Signature-256"] = line:sub(1, tab - 1)}
  return wrk.format("POST", "/api/whatsapp/webhook", headers, line:sub(tab + 1))
end
