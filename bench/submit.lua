-- wrk script of the order-submit benchmark (bench/submit.py runs it, one connection per thread).
--
-- wrk -t 10 -c 10 -s bench/submit.lua URL -- QUOTA KEY_PREFIX STATUS LOCATION SINK CLIENT...
--   QUOTA       requests per connection; the thread stops after that many answers
--   KEY_PREFIX  20 hex digits; each request's idempotency key is the prefix, the thread and a
--               counter (a fresh key every request)
--   STATUS      the status of a success: 302 (Post/Redirect/Get) or 201 (the API's Created)
--   LOCATION    Lua pattern of a success's Location
--   SINK        a loopback port that accepts connections and never reads them
--   CLIENT      one per thread: "form|cookie header|form body without the key|path,path,..."
--               (the order form: the key is the form's idempotency_key field), or
--               "api|API key|JSON body with PATIENT_ID for the patient|id,id,..." (the partner
--               API: POST /api/v1/orders/, the key in the Idempotency-Key header)
--
-- gunicorn's sync workers close the connection after each answer and wrk opens the next one
-- at once, also after a thread's last answer. That connection would stay idle and hold a sync
-- worker until gunicorn's timeout, so a thread that has its answers points it at SINK instead.
--
-- Each thread times its own requests (monotonic clock, through LuaJIT's FFI): with one
-- connection per thread a request and its answer pair up exactly. wrk's histogram is not used:
-- it is "corrected" with the run time, which here includes waiting for the stop. When a thread
-- has its answers it stops and says so on stderr; the caller then interrupts wrk's sleep, and
-- done() prints one line of JSON.

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } submit_bench_timespec;
  int clock_gettime(int clock, submit_bench_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock_now = ffi.new("submit_bench_timespec")

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
local API_PATH = "/api/v1/orders/"
local quota, key_prefix, expected_status, expected_location, sink, mode, credential, body, targets
local counter, answered, sent_at = 0, 0, nil
ok, failures, statuses, latencies, first_failure = 0, 0, {}, {}, ""
started_ms, finished_ms = nil, nil

function init(args)
  quota = tonumber(args[1])
  key_prefix = args[2]
  expected_status = tonumber(args[3])
  expected_location = args[4]
  sink = wrk.lookup("127.0.0.1", args[5])[1]
  local client = args[5 + id]
  local bars = {}
  for position = 1, #client do
    if client:sub(position, position) == "|" then
      table.insert(bars, position)
    end
  end
  mode = client:sub(1, bars[1] - 1)
  credential = client:sub(bars[1] + 1, bars[2] - 1)
  body = client:sub(bars[2] + 1, bars[3] - 1)
  targets = {}
  for target in client:sub(bars[3] + 1):gmatch("[^,]+") do
    table.insert(targets, target)
  end
end

function request()
  counter = counter + 1
  -- 8-4-4-4-12 hex digits: 20 from the prefix, 2 for the thread, 10 for the counter.
  local tail = string.format("%02x%010x", id, counter)
  local key = string.format(
    "%s-%s-%s-%s-%s", key_prefix:sub(1, 8), key_prefix:sub(9, 12), key_prefix:sub(13, 16),
    key_prefix:sub(17, 20), tail
  )
  local target = targets[(counter % #targets) + 1]
  local request_text
  if mode == "api" then
    local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Api-Key " .. credential,
      ["Idempotency-Key"] = key,
    }
    local json = body:gsub("PATIENT_ID", target)
    request_text = wrk.format("POST", API_PATH, headers, json)
  else
    local headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = credential,
    }
    request_text = wrk.format("POST", target, headers, body .. "&idempotency_key=" .. key)
  end
  sent_at = now_ms()
  return request_text
end

function response(status, headers, body)
  local now = now_ms()
  answered = answered + 1
  -- Not in request(): wrk calls it once before the run to check the request it returns.
  started_ms = started_ms or sent_at
  table.insert(latencies, now - sent_at)
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  local location = headers["Location"] or headers["location"] or ""
  if status == expected_status and location:match(expected_location) then
    ok = ok + 1
  else
    failures = failures + 1
    if first_failure == "" then
      first_failure = status .. " " .. location .. " " .. body:sub(1, 300)
    end
  end
  if answered >= quota then
    finished_ms = now
    wrk.thread.addr = sink  -- where wrk reconnects after this answer: not the server
    wrk.thread:stop()
    io.stderr:write("thread-done\n")
  end
end

local function percentile(sorted, q)
  if #sorted == 0 then
    return 0
  end
  local position = (#sorted - 1) * q / 100
  local low = math.floor(position)
  local high = math.min(low + 1, #sorted - 1)
  return sorted[low + 1] + (sorted[high + 1] - sorted[low + 1]) * (position - low)
end

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function done(summary, latency, requests)
  local all, counts, samples = {}, {}, {}
  local total_ok, total_failures, first, last, failure = 0, 0, nil, nil, ""
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("latencies")) do
      table.insert(all, value)
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
  for _, value in ipairs(all) do
    table.insert(samples, string.format("%.3f", value))
  end
  table.sort(all)
  local status_items = {}
  for status, count in pairs(counts) do
    table.insert(status_items, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "ok": %d, "failures": %d, "statuses": {%s}, "p50_ms": %.3f, '
      .. '"p99_ms": %.3f, "max_ms": %.3f, "elapsed_ms": %.3f, "socket_errors": %d, '
      .. '"first_failure": %s, "latencies_ms": [%s]}\n',
    #all, total_ok, total_failures, table.concat(status_items, ", "), percentile(all, 50),
    percentile(all, 99), all[#all] or 0, (last or 0) - (first or 0),
    errors.connect + errors.read + errors.write + errors.timeout, json_string(failure),
    table.concat(samples, ", ")
  ))
end
