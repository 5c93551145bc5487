-- wrk script of the live dose check benchmark (bench/dose_check.py runs it, one connection per
-- thread).
--
-- wrk -t 10 -c 10 -s bench/dose_check.lua URL -- QUOTA PATH EXPECTED_BODY SINK SIGNIN...
--   QUOTA          requests per connection; the thread stops after that many answers
--   PATH           where the JSON is POSTed (the dose check, or the baseline view)
--   EXPECTED_BODY  Lua pattern the body of a success matches (with status 200)
--   SINK           a loopback port that accepts connections and never reads them
--   SIGNIN         one per thread: "cookie header|CSRF token|body" and more bodies after a
--                  newline each; the thread sends them in turn (one per patient)
--
-- As in bench/submit.lua: gunicorn's sync workers close the connection after each answer and wrk
-- opens the next one at once, so a thread that has its answers points it at SINK; each thread
-- times its own requests with the monotonic clock (LuaJIT's FFI); done() prints one line of
-- JSON with every latency.

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } dose_check_bench_timespec;
  int clock_gettime(int clock, dose_check_bench_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock_now = ffi.new("dose_check_bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock_now)
  return tonumber(clock_now.tv_sec) * 1000 + tonumber(clock_now.tv_nsec) / 1e6
end

-- In the main Lua state: number the threads and keep them for done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- In each thread's own Lua state.
local quota, path, expected_body, sink, headers, bodies
local counter, answered, sent_at = 0, 0, nil
ok, failures, statuses, latencies, first_failure = 0, 0, {}, {}, ""
started_ms, finished_ms = nil, nil

function init(args)
  quota = tonumber(args[1])
  path = args[2]
  expected_body = args[3]
  sink = wrk.lookup("127.0.0.1", args[4])[1]
  local signin = args[4 + id]
  local first_bar = signin:find("|", 1, true)
  local second_bar = signin:find("|", first_bar + 1, true)
  headers = {
    ["Content-Type"] = "application/json",
    ["Cookie"] = signin:sub(1, first_bar - 1),
    ["X-CSRFToken"] = signin:sub(first_bar + 1, second_bar - 1),
  }
  bodies = {}
  for body in signin:sub(second_bar + 1):gmatch("[^\n]+") do
    table.insert(bodies, body)
  end
end

function request()
  counter = counter + 1
  sent_at = now_ms()
  return wrk.format("POST", path, headers, bodies[(counter % #bodies) + 1])
end

function response(status, headers, body)
  local now = now_ms()
  answered = answered + 1
  -- Not in request(): wrk calls it once before the run to check the request it returns.
  started_ms = started_ms or sent_at
  table.insert(latencies, now - sent_at)
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if status == 200 and body:match(expected_body) then
    ok = ok + 1
  else
    failures = failures + 1
    if first_failure == "" then
      first_failure = status .. " " .. body:sub(1, 300)
    end
  end
  if answered >= quota then
    finished_ms = now
    wrk.thread.addr = sink -- where wrk reconnects after this answer: not the server
    wrk.thread:stop()
    io.stderr:write("thread-done\n")
  end
end

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function done(summary, latency, requests)
  local samples, counts = {}, {}
  local total_ok, total_failures, first, last, failure = 0, 0, nil, nil, ""
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("latencies")) do
      table.insert(samples, string.format("%.3f", value))
    end
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
    total_ok = total_ok + thread:get("ok")
    total_failures = total_failures + thread:get("failures")
    if failure == "" then
      failure = thread:get("first_failure")
    end
    local thread_started, thread_finished = thread:get("started_ms"), thread:get("finished_ms")
    if thread_started and (first == nil or thread_started < first) then
      first = thread_started
    end
    -- A thread that never finished makes the run incomplete (the caller sees the count).
    if thread_finished and (last == nil or thread_finished > last) then
      last = thread_finished
    end
  end
  local status_items = {}
  for status, count in pairs(counts) do
    table.insert(status_items, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "ok": %d, "failures": %d, "statuses": {%s}, "elapsed_ms": %.3f, '
      .. '"socket_errors": %d, "first_failure": %s, "latencies_ms": [%s]}\n',
    #samples, total_ok, total_failures, table.concat(status_items, ", "),
    (last or 0) - (first or 0), errors.connect + errors.read + errors.write + errors.timeout,
    json_string(failure), table.concat(samples, ", ")
  ))
end
