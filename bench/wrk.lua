-- The one wrk script of bench/run, configured by environment variables:
--   BENCH_METHOD, BENCH_PATH   the request line (default GET /)
--   BENCH_BODY=JSON            the same body on every request
--   BENCH_BODIES=FILE          one JSON body per line, each sent once; wrk
--                              thread k of BENCH_THREADS takes lines k, k+n, …
--   BENCH_TOKENS=FILE          bearer tokens, used round robin (split likewise)
--   BENCH_DELAY_MS=N          wait N ms before each request (a probe, not a load)
--   BENCH_STATUSES=1           count responses by status (costs a Lua call
--                              per response, so the ceiling run leaves it off)
-- done() prints one line "BENCH {json}" that bench/run parses.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.path = os.getenv("BENCH_PATH") or "/"
wrk.body = os.getenv("BENCH_BODY")
if wrk.body or os.getenv("BENCH_BODIES") then
  wrk.headers["Content-Type"] = "application/json"
end

local function share_of(path, id, n)
  local out, i = {}, 0
  for line in io.lines(path) do
    if i % n == id then out[#out + 1] = line end
    i = i + 1
  end
  return out
end

function init(args)
  local n = tonumber(os.getenv("BENCH_THREADS") or "1")
  statuses = {}
  exhausted = 0
  cursor = 0
  -- Requests are formatted here, before the clock starts: on a 2-core
  -- machine every µs wrk spends per request is taken from the server.
  local file = os.getenv("BENCH_BODIES")
  if file then
    bodies = share_of(file, id, n)
    for i, body in ipairs(bodies) do bodies[i] = wrk.format(nil, nil, nil, body) end
  end
  file = os.getenv("BENCH_TOKENS")
  if file then
    tokens = share_of(file, id, n)
    for i, token in ipairs(tokens) do
      tokens[i] = wrk.format(nil, nil, { Authorization = "Bearer " .. token }, nil)
    end
  end
end

if os.getenv("BENCH_BODIES") then
  request = function()
    cursor = cursor + 1
    local req = bodies[cursor]
    if not req then
      -- Out of single-use bodies: resend the last one (it will fail and
      -- show as non-2xx) and say so in the report.
      exhausted = exhausted + 1
      req = bodies[#bodies]
    end
    return req
  end
elseif os.getenv("BENCH_TOKENS") then
  request = function()
    cursor = cursor % #tokens + 1
    return tokens[cursor]
  end
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
  delay = function() return pause end
end

if os.getenv("BENCH_STATUSES") == "1" then
  response = function(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local merged, spent = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + count
    end
    spent = spent + (thread:get("exhausted") or 0)
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"micros":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non2xx":%d,"socket_errors":%d,"exhausted":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout, spent,
    table.concat(parts, ",")))
end
