-- Checks on jobs nginx enqueued, made with the C client (arg[1]: lines of
-- "kind id n"): the producers must agree on stored fields and keys. Kind
-- "readme" is the job of the README's OpenResty snippet.
local runq = require "runq"
local app = assert(runq.new(assert(os.getenv("RUNQ_E2E_REDIS_URL"))))
local ok = true
local function check(cond, msg)
  if not cond then
    io.stderr:write("check: " .. msg .. "\n")
    ok = false
  end
end
for line in io.lines(assert(arg[1])) do
  local kind, id, n = line:match("^(%S+) (%S+) (%d+)$")
  n = tonumber(n)
  local job, err = app:get(id)
  check(job, "get " .. id .. ": " .. tostring(err))
  if job and kind == "readme" then
    check(job.task == "welcome" and job.queue == "mail", "README job " .. id)
    check(job.args[1] == "ada@example.org", "README job args")
    check(job.state == "pending", "README job is " .. tostring(job.state))
  elseif job then
    check(job.task == "e2e.square", "task " .. tostring(job.task))
    check(job.args[1] == n and job.args.via == "nginx", "args of " .. id)
    check(job.max_retries == 3, "unregistered default max_retries, got " .. tostring(job.max_retries))
    if kind == "scheduled" then
      check(job.state == "scheduled", "delayed job is " .. tostring(job.state))
      check(job.queue == "e2e-later", "queue " .. tostring(job.queue))
      check(job.eta and job.eta > job.created_at, "eta not after creation")
    elseif kind == "once" then
      local id2, _, code, holder = app:enqueue("e2e.square", { n, via = "nginx" },
                                               { queue = "e2e", once_in = 1000000 })
      check(id2 == nil and code == "EDUPLICATE" and holder == id,
            ("C once_in saw %s %s %s, want EDUPLICATE of %s"):format(
              tostring(id2), tostring(code), tostring(holder), id))
    end
  end
end
print("check: " .. (ok and "ok" or "FAILED"))
os.exit(ok and 0 or 1)
