-- The consumer side of the OpenResty e2e test: a runq worker (C engine,
-- Redis backend) processes the jobs nginx enqueued, then every id listed in
-- the file arg[1] must be done with the right result.
local runq = require "runq"
local url, ids_file = assert(os.getenv("RUNQ_E2E_REDIS_URL")), assert(arg[1])

local app = assert(runq.new(url))
local handled = 0
assert(app:task("e2e.square", function(args)
  assert(args.via == "nginx", "kwargs did not survive the trip")
  handled = handled + 1
  return args[1] * args[1]
end, { queue = "e2e" }))

local expected = {}
for line in io.lines(ids_file) do
  local id, n = line:match("^(%S+) (%d+)$")
  expected[#expected + 1] = { id = id, n = tonumber(n) }
end

local w = assert(app:worker { queues = { "e2e" } })
-- Every job is already enqueued: run until the queue is drained.
while true do
  local r, err = w:run_once(0.5)
  if r == nil then error(err) end
  if r == false then
    local s = assert(app:stats("e2e"))
    if s.pending == 0 and s.scheduled == 0 and s.active == 0 then break end
  end
end

local bad = 0
for _, e in ipairs(expected) do
  local job, err = app:wait(e.id, 10)
  if not job or job.state ~= "done" or job.result ~= e.n * e.n then
    bad = bad + 1
    io.stderr:write(("job %s (n=%d): %s\n"):format(e.id, e.n,
      job and (job.state .. " " .. tostring(job.result) .. " " .. tostring(job.error)) or err))
  end
end
print(("worker: %d handled, %d expected, %d bad"):format(handled, #expected, bad))
os.exit((bad == 0 and handled == #expected) and 0 or 1)
