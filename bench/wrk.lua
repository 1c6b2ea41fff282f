-- wrk script for every benchmark run.
--
-- BENCH_PATH is the request path. An "{id}" in it becomes a random id between
-- BENCH_ID_MIN and BENCH_ID_MAX on each request; each thread has a fixed random seed, so
-- every run asks for the same ids in the same order. Without "{id}" wrk sends its one
-- prepared request (no Lua per request, the fastest wrk can go).
--
-- done() prints one line, "BENCH_JSON {...}", that the harness reads: request count,
-- duration, errors (wrk's status errors are responses >= 400) and latency percentiles in
-- microseconds. No response() callback: it would make wrk hand every response to Lua.

local path = os.getenv("BENCH_PATH") or "/"
local low = tonumber(os.getenv("BENCH_ID_MIN") or "1")
local high = tonumber(os.getenv("BENCH_ID_MAX") or "1")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(7919 * thread_number)
end

local prefix, suffix = path:match("^(.-){id}(.*)$")
if prefix then
  request = function()
    return wrk.format(nil, prefix .. math.random(low, high) .. suffix)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)
  ))
end
