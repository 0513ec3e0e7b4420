-- wrk script for bench/registry.sh: schema registry lookups, spread at random over the schemas
-- the script registered. Environment:
--   REGISTRY_BENCH_MODE    by-id   GET /schemas/ids/{id}                (what deserializers do)
--                          latest  GET /subjects/{subject}/versions/latest
--                          lookup  POST /subjects/{subject} with the schema as the body (what
--                                  serializers do with auto.register.schemas=false)
--   REGISTRY_BENCH_SCHEMAS a file of registered schemas, one a line: id, subject and the JSON
--                          request body, separated by tabs
-- done() prints one line of key=value pairs (latencies in ms) for bench/registry.sh.

local mode = os.getenv("REGISTRY_BENCH_MODE") or "by-id"
local schemas = {}

local function load(path)
  local f = assert(io.open(path, "r"), "cannot open REGISTRY_BENCH_SCHEMAS")
  for line in f:lines() do
    local id, subject, body = line:match("^(%d+)\t([^\t]+)\t(.+)$")
    if id then
      schemas[#schemas + 1] = { id = id, subject = subject, body = body }
    end
  end
  f:close()
  assert(#schemas > 0, "no schemas in REGISTRY_BENCH_SCHEMAS")
end

load(os.getenv("REGISTRY_BENCH_SCHEMAS"))

local headers = {
  ["Accept"] = "application/vnd.schemaregistry.v1+json",
  ["Content-Type"] = "application/vnd.schemaregistry.v1+json",
}

function init(args)
  -- Each thread its own sequence of picks.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  local s = schemas[math.random(#schemas)]
  if mode == "by-id" then
    return wrk.format("GET", "/schemas/ids/" .. s.id, headers)
  elseif mode == "latest" then
    return wrk.format("GET", "/subjects/" .. s.subject .. "/versions/latest", headers)
  else
    return wrk.format("POST", "/subjects/" .. s.subject, headers, s.body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "mode=%s schemas=%d requests=%d duration_s=%.3f req_s=%.0f p50_ms=%.3f p90_ms=%.3f "
      .. "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mean_ms=%.3f non_2xx=%d connect_errors=%d "
      .. "read_errors=%d write_errors=%d timeouts=%d bytes=%d\n",
    mode, #schemas, summary.requests, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, latency.mean / 1000, e.status, e.connect, e.read, e.write, e.timeout,
    summary.bytes))
end
