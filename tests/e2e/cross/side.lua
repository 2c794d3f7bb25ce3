-- The Lua side of tests/e2e/cross: lua5.4 side.lua MODE URL FILE|N
--   produce URL N   enqueue N "cross.from_lua" jobs on queue cross-py; print "id n"
--   check URL FILE  the Python worker's results for those jobs
--   work URL FILE   handle the "cross.from_py" jobs listed in FILE (queue cross-lua)
local runq = require "runq"
local mode, url, x = arg[1], arg[2], arg[3]
local app = assert(runq.new(url))

local function listed(file)
  local out = {}
  for line in io.lines(file) do
    local id, n = line:match("^(%S+) (%d+)$")
    out[#out + 1] = { id = id, n = tonumber(n) }
  end
  assert(#out > 0, "no jobs listed in " .. file)
  return out
end

if mode == "produce" then
  for n = 1, tonumber(x) do
    -- Positional 1 and 2, keyword `tag`: Python sees from_lua(n, 2n, tag="lua").
    local id = assert(app:enqueue("cross.from_lua", { n, 2 * n, tag = "lua" }, { queue = "cross-py" }))
    print(id .. " " .. n)
  end
elseif mode == "check" then
  for _, e in ipairs(listed(x)) do
    local job = assert(app:wait(e.id, 30))
    assert(job.state == "done", e.id .. " is " .. tostring(job.state))
    assert(job.result.sum == 3 * e.n and job.result.tag == "lua",
           ("job %s: result sum=%s tag=%s"):format(e.id, tostring(job.result.sum), tostring(job.result.tag)))
  end
elseif mode == "work" then
  local jobs, handled = listed(x), 0
  assert(app:task("cross.from_py", function(args)
    assert(args.tag == "py", "the keyword argument did not arrive")
    handled = handled + 1
    return { product = args[1] * args[2], text = args[3] .. "!" }
  end, { queue = "cross-lua" }))
  local w = assert(app:worker { queues = { "cross-lua" } })
  while handled < #jobs do
    local r, err = w:run_once(30)
    if r == nil then error(err) end
    if r == false then error(("only %d of %d jobs arrived"):format(handled, #jobs)) end
  end
  w:stop()
else
  error("usage: side.lua produce|check|work URL FILE|N")
end
