-- The runq Lua API against the backend in RUNQ_TEST_URL (memory:// default).
local runq = require "runq"
local h = require "helper"

describe("runq (" .. h.url .. ")", function()
  it("opens apps and reports bad URLs", function()
    local app = assert(runq.new(h.url))
    assert.are.equal(h.is_redis and "redis" or "memory", app:backend())
    local bad, err, code = runq.new("nosuch://x")
    assert.is_nil(bad)
    assert.is_string(err)
    assert.are.equal("EURL", code)
  end)

  it("enqueues, runs the handler with args and job, stores the result", function()
    local app, q = h.fresh()
    local seen
    assert(app:task("add", function(args, job)
      seen = { args = args, id = job:id(), task = job:task(), queue = job:queue(),
               attempt = job:attempt() }
      return { sum = args[1] + args[2], tag = args.tag }
    end, { queue = q }))
    local id = assert(app:enqueue("add", { 2, 3, tag = "x" }))
    assert.are.equal(26, #id)
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.same({ 2, 3, tag = "x" }, seen.args)
    assert.are.equal(id, seen.id)
    assert.are.equal("add", seen.task)
    assert.are.equal(q, seen.queue)
    assert.are.equal(1, seen.attempt)
    local job = assert(app:wait(id, h.WAIT))
    assert.are.equal("done", job.state)
    assert.are.same({ sum = 5, tag = "x" }, job.result)
    assert.are.same({ 2, 3, tag = "x" }, job.args)
    w:close()
  end)

  it("keeps nothing of done jobs with result_ttl = 0", function()
    local app = assert(runq.new(h.url, { result_ttl = 0 }))
    local q = h.name("q")
    assert(app:task("t", function(args) return args[1] * 2 end, { queue = q }))
    local id = assert(app:enqueue("t", { 21 }))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    local job, err, code = app:get(id)
    assert.is_nil(job)
    assert.is_string(err)
    assert.are.equal("ENOTFOUND", code)
    w:close()
  end)

  it("returns false from run_once when no job is due", function()
    local app, q = h.fresh()
    assert(app:task("t", function() end, { queue = q }))
    local w = assert(app:worker { queues = q })
    assert.is_false(w:run_once(0))
  end)

  it("honours delay (scheduled, not fetched)", function()
    local app, q = h.fresh()
    assert(app:task("t", function() end, { queue = q }))
    local id = assert(app:enqueue("t", {}, { delay = 3600 }))
    assert.are.equal("scheduled", assert(app:get(id)).state)
    assert.are.equal(1, assert(app:stats(q)).scheduled)
    local w = assert(app:worker { queues = { q } })
    assert.is_false(w:run_once(0))
  end)

  it("runs higher priority first", function()
    local app, q = h.fresh()
    local order = {}
    assert(app:task("t", function(args) order[#order + 1] = args[1] end, { queue = q }))
    assert(app:enqueue("t", { "low" }, { priority = 1 }))
    assert(app:enqueue("t", { "high" }, { priority = 10 }))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.same({ "high", "low" }, order)
  end)

  it("fails a job whose handler raises, with message and traceback", function()
    local app, q = h.fresh()
    assert(app:task("boom", function() error("kaboom") end,
                    { queue = q, max_retries = 0 }))
    local id = assert(app:enqueue("boom", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("failed", w:run_once(h.WAIT))
    local job = assert(app:wait(id, h.WAIT))
    assert.are.equal("dead", job.state)
    assert.matches("kaboom", job.error)
    assert.matches("traceback", job.error)
    assert.are.same({ id }, assert(app:dead(q)))
  end)

  it("retries with backoff, then dead-letters, and can revive dead jobs", function()
    local app, q = h.fresh()
    local attempts = {}
    local fail = true
    assert(app:task("flaky", function(_, job)
      attempts[#attempts + 1] = job:attempt()
      if fail then error({ code = 1 }) end
      return "ok"
    end, { queue = q, max_retries = 2, backoff_min = 0, backoff_max = 0 }))
    local id = assert(app:enqueue("flaky", {}))
    local w = assert(app:worker { queues = { q } })
    for _ = 1, 3 do
      assert.are.equal("failed", w:run_once(h.WAIT))
    end
    assert.are.same({ 1, 2, 3 }, attempts)
    local job = assert(app:get(id))
    assert.are.equal("dead", job.state)
    assert.matches("error object is a table", job.error)
    assert.are.equal(1, assert(app:stats(q)).dead)
    assert(app:retry_dead(id))
    fail = false
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.equal("ok", assert(app:wait(id, h.WAIT)).result)
    assert.are.equal(0, assert(app:stats(q)).dead)
  end)

  it("retries when the handler returns or raises runq.retry(delay)", function()
    local app, q = h.fresh()
    local n = 0
    assert(app:task("again", function()
      n = n + 1
      if n == 1 then return runq.retry(0) end
      if n == 2 then error(runq.retry(0)) end
      return n
    end, { queue = q, max_retries = 5 }))
    local id = assert(app:enqueue("again", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("retry", w:run_once(h.WAIT))
    assert.are.equal("retry", w:run_once(h.WAIT))
    assert.are.equal("done", w:run_once(h.WAIT))
    local job = assert(app:wait(id, h.WAIT))
    assert.are.equal(3, job.result)
    assert.are.equal(3, job.attempt)
  end)

  it("schedules a runq.retry with a delay in the future", function()
    local app, q = h.fresh()
    assert(app:task("later", function() return runq.retry(3600) end, { queue = q }))
    local id = assert(app:enqueue("later", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("retry", w:run_once(h.WAIT))
    assert.are.equal("scheduled", assert(app:get(id)).state)
    assert.is_false(w:run_once(0))
  end)

  it("fails jobs whose result cannot be encoded", function()
    local app, q = h.fresh()
    assert(app:task("fn", function() return print end, { queue = q, max_retries = 0 }))
    local id = assert(app:enqueue("fn", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("failed", w:run_once(h.WAIT))
    assert.matches("cannot encode a function", assert(app:get(id)).error)
  end)

  it("fails jobs of tasks without a Lua handler", function()
    local app, q = h.fresh()
    assert(app:task("nohandler", nil, { queue = q, max_retries = 0 }))
    local id = assert(app:enqueue("nohandler", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("failed", w:run_once(h.WAIT))
    assert.matches("no Lua handler", assert(app:get(id)).error)
  end)

  it("replaces a handler when a task is registered again", function()
    local app, q = h.fresh()
    assert(app:task("t", function() return 1 end, { queue = q }))
    assert(app:task("t", function() return 2 end, { queue = q }))
    local id = assert(app:enqueue("t", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.equal(2, assert(app:wait(id, h.WAIT)).result)
  end)

  it("rejects duplicate unique keys and reports the holder", function()
    local app, q = h.fresh()
    local key = h.name("key")
    local id1 = assert(app:enqueue("u", { 1 }, { queue = q, unique_key = key }))
    local id2, err, code, holder = app:enqueue("u", { 2 }, { queue = q, unique_key = key })
    assert.is_nil(id2)
    assert.is_string(err)
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id1, holder)
  end)

  it("once_in allows one job per task+args per period", function()
    local app, q = h.fresh()
    local task = h.name("once")
    local id1 = assert(app:enqueue(task, { 1 }, { queue = q, once_in = 1000000 }))
    local _, _, code, holder = app:enqueue(task, { 1 }, { queue = q, once_in = 1000000 })
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id1, holder)
    assert(app:enqueue(task, { 2 }, { queue = q, once_in = 1000000 }))
    local _, err = app:enqueue(task, {}, { once_in = 10, unique_key = "k" })
    assert.matches("exclusive", err)
  end)

  it("rejects bad input with nil, err, code", function()
    local app, q = h.fresh()
    local cases = {
      { "t", { f = print } },
      { "t", { 1, 2 }, { delay = "soon" } },
      { "t", { 1 }, { priority = 1.5 } },
      { "t", { 1 }, { delay = -1 } },
      { 42, {} },
      { "t", 42 },
      { "t", {}, 42 },
      { "bad name with spaces", {} },
      { "t", {}, { queue = "{bad}" } },
    }
    for i, c in ipairs(cases) do
      local id, err, code = app:enqueue(c[1], c[2], c[3])
      assert.is_nil(id, "case " .. i)
      assert.is_string(err, "case " .. i)
      assert.is_string(code, "case " .. i)
    end
    local _, err = app:enqueue("t", { io.stdout })
    assert.matches("cannot encode a userdata", err)
    local c = {}
    c[1] = c
    _, err = app:enqueue("t", c)
    assert.matches("cyclic", err)
    assert.is_nil((app:task("t", 42)))
    assert.is_nil((app:worker { queues = 42 }))
    assert.is_nil((app:worker { concurrency = 0 }))
    assert.is_nil((app:get("nosuchid")))
    assert.are.equal(0, assert(app:stats(q)).pending)
  end)

  it("stops run() from inside a handler", function()
    local app, q = h.fresh()
    local w
    local n = 0
    assert(app:task("t", function(args)
      n = n + 1
      if args[1] == "stop" then w:stop() end
    end, { queue = q }))
    for _ = 1, 3 do assert(app:enqueue("t", { "go" })) end
    assert(app:enqueue("t", { "stop" }, { priority = -1 }))
    w = assert(app:worker { queues = { q } })
    assert.are.equal(4, w:run { poll = h.WAIT })
    assert.are.equal(4, n)
    assert.is_true(w:stopped())
    local r, _, code = w:run_once(0)
    assert.is_nil(r)
    assert.are.equal("ECLOSED", code)
    assert.are.equal(4, w:stats().processed)
  end)

  it("survives a handler that closes its own worker", function()
    local app, q = h.fresh()
    local w
    assert(app:task("t", function() w:close() end, { queue = q }))
    assert(app:enqueue("t", {}))
    w = assert(app:worker { queues = { q } })
    local ww = w.w
    assert.are.equal("done", ww:run_once(h.WAIT))
    assert.has_error(function() ww:run_once(0) end, "runq worker is closed")
  end)

  it("invalidates the job object once its handler returned", function()
    local app, q = h.fresh()
    local kept
    assert(app:task("t", function(_, job) kept = job end, { queue = q }))
    assert(app:enqueue("t", {}))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.has_error(function() kept:id() end, "runq job is no longer valid (its handler returned)")
  end)

  it("refuses to close an app while a worker uses it", function()
    local app = assert(runq.new(h.url))
    local w = assert(app:worker {})
    local ok, _, code = app:close()
    assert.is_nil(ok)
    assert.are.equal("ESTATE", code)
    w:close()
    assert.is_true(app:close())
    assert.has_error(function() app:enqueue("t", {}) end)
  end)
end)

describe("runq.strict (" .. h.url .. ")", function()
  local strict = require "runq.strict"

  it("raises instead of returning nil, err", function()
    assert.has_error(function() strict.new("nosuch://") end)
    local app = strict.new(h.url)
    assert.has_error(function() app:enqueue("t", { print }) end)
    local q = h.name("q")
    app:task("t", function(args) return args[1] end, { queue = q })
    local id = app:enqueue("t", { 7 })
    local w = app:worker { queues = { q } }
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.is_false(w:run_once(0))
    assert.are.equal(7, app:wait(id, h.WAIT).result)
  end)
end)
