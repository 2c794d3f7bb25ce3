-- runq Lua binding benchmark (run by bench/run.sh).
--
--   lua_bench.lua URL N [all|produce|consume] [concurrency] [async]
--
-- all:      enqueue N jobs one at a time (timed), then drain them with a
--           pull-mode worker and a no-op handler (timed); then, where the
--           binding has app:enqueue_many, enqueue N more in batches of 100
--           (timed) and drain them (not timed)
-- produce:  enqueue N jobs in batches of 100 (app:enqueue_many; one at a time
--           where the binding has none): the producer half of an
--           end-to-end run, batched like the C and Python producers
-- consume:  handle N jobs as they come; the clock starts at the first job
-- async:    the worker acks asynchronously (worker{async_ack = true})
-- Prints "RESULT <name> <value> jobs/s" lines.
local runq = require "runq"

local url = assert(arg[1], "usage: lua_bench.lua URL N [all|produce|consume] [concurrency]")
local n = tonumber(arg[2] or "30000")
local mode = arg[3] or "all"
local conc = tonumber(arg[4] or "16")
local async_ack = arg[5] == "async"
local queue = "luabench"

-- A monotonic-enough clock: os.clock is CPU time, so use the engine's
-- wall clock where possible; fall back to os.time.
local now
do
  local ok, socket = pcall(require, "socket")
  if ok and socket.gettime then
    now = socket.gettime
  else
    local ffi_ok, ffi = pcall(require, "ffi")
    if ffi_ok then
      ffi.cdef [[
        typedef struct { long tv_sec; long tv_nsec; } rqb_timespec;
        int clock_gettime(int clk, rqb_timespec *ts);
      ]]
      local ts = ffi.new("rqb_timespec")
      now = function()
        ffi.C.clock_gettime(1, ts)
        return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
      end
    else
      -- Lua 5.4 without luasocket: read /proc/uptime-like wall time with
      -- sub-second resolution from date(1) once at start and end only.
      now = function()
        local p = io.popen("date +%s.%N")
        local t = tonumber(p:read("*l"))
        p:close()
        return t
      end
    end
  end
end

local function result(name, v)
  io.write(string.format("RESULT %s %.6g jobs/s\n", name, v))
  io.flush()
end

-- result_ttl = 0: done jobs are not kept, as the peers are run (bench/README.md)
local app = assert(runq.new(url, { result_ttl = 0 }))
local handled = 0
assert(app:task("bench.noop", function(args, job) handled = handled + 1 end, { queue = queue }))

local function produce(count)
  for i = 1, count do
    local id, err = app:enqueue("bench.noop", { i }, { queue = queue })
    if not id then error("enqueue: " .. tostring(err)) end
  end
end

local function consume(count, clock_at_first)
  local w = assert(app:worker { queues = { queue }, concurrency = conc, async_ack = async_ack })
  local t0 = now()
  if clock_at_first then
    -- wait for the first job, then start the clock
    while true do
      local r, err = w:run_once(30)
      if r == nil then error("run_once: " .. tostring(err)) end
      if r then break end
    end
    t0 = now()
    count = count - 1
  end
  local done = 0
  while done < count do
    local r, err = w:run_once(5)
    if r == nil then error("run_once: " .. tostring(err)) end
    if r == false then break end
    done = done + 1
  end
  local dt = now() - t0
  w:close()
  return done, dt
end

local function produce_many(count)
  local batch = {}
  for i = 1, count do
    batch[#batch + 1] = { "bench.noop", { i }, { queue = queue } }
    if #batch == 100 or i == count then
      local ids, errs = app:enqueue_many(batch)
      if not ids or errs then error("enqueue_many: " .. tostring(errs)) end
      batch = {}
    end
  end
end

if mode == "all" then
  local t0 = now()
  produce(n)
  result("enqueue", n / (now() - t0))
  local done, dt = consume(n, false)
  result("process", done / dt)
  if app.enqueue_many then
    t0 = now()
    produce_many(n)
    result("enqueue_many100", n / (now() - t0))
    consume(n, false)
  end
elseif mode == "produce" then
  if app.enqueue_many then produce_many(n) else produce(n) end
elseif mode == "consume" then
  local done, dt = consume(n, true)
  result("e2e", done / dt)
else
  error("unknown mode " .. mode)
end
app:close()
