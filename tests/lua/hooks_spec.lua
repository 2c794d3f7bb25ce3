-- Hooks, job metadata and compressed payloads from Lua, against the backend
-- in RUNQ_TEST_URL (memory:// default).
local runq = require "runq"
local h = require "helper"

describe("runq hooks and metadata (" .. h.url .. ")", function()
  it("carries metadata from enqueue to the handler and the snapshot", function()
    local app, q = h.fresh()
    local seen
    assert(app:task("m", function(_, job) seen = job:meta() return true end, { queue = q }))
    local id = assert(app:enqueue("m", {}, { queue = q, meta = { tenant = "acme", empty = "" } }))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.same({ tenant = "acme", empty = "" }, seen)
    assert.are.same({ tenant = "acme", empty = "" }, assert(app:get(id)).meta)
    local none, err, code = app:enqueue("m", {}, { queue = q, meta = { n = 1 } })
    assert.is_nil(none)
    assert.matches("meta", err)
    assert.are.equal("EINVAL", code)
    none, err, code = app:enqueue("m", {}, { queue = q, meta = { [""] = "x" } })
    assert.is_nil(none)
    assert.are.equal("EINVAL", code)
    w:close()
  end)

  it("runs hooks in order with outcomes, on the calling state", function()
    local app, q = h.fresh()
    local events = {}
    local function log(...) events[#events + 1] = table.concat({ ... }, " ") end
    assert(app:on_enqueue(function(job)
      assert(job:set_meta("stamp", "s-" .. job:args()[1]))
      log("enqueue", job:args()[1])
    end))
    assert(app:before_process(function(job)
      log("before", job:args()[1], job:meta().stamp, job:attempt())
    end))
    local durations = {}
    assert(app:after_process(function(job, outcome, err, seconds)
      durations[#durations + 1] = seconds
      log("after", job:args()[1], outcome, err and err:match("boom %a+") or "-")
    end))
    assert(app:task("flaky", function(args, job)
      if args[1] == "dead" or (args[1] == "retry" and job:attempt() == 1) then
        error("boom " .. args[1])
      end
      return args[1]
    end, { queue = q, max_retries = 1, backoff_min = 0, backoff_max = 0 }))
    assert(app:enqueue("flaky", { "ok" }, { queue = q }))
    assert(app:enqueue("flaky", { "retry" }, { queue = q }))
    assert(app:enqueue("flaky", { "dead" }, { queue = q, max_retries = 0 }))
    -- No prefetch (it needs auto_extend): a prefetched "dead" would already
    -- be leased when the retry comes due again, and run first.
    local w = assert(app:worker { queues = { q }, auto_extend = false })
    for _ = 1, 4 do assert.is_string(w:run_once(h.WAIT)) end
    assert.are.same({
      "enqueue ok", "enqueue retry", "enqueue dead",
      "before ok s-ok 1", "after ok acked -",
      "before retry s-retry 1", "after retry retried boom retry",
      -- the retry (no backoff) is due again and older than "dead"
      "before retry s-retry 2", "after retry acked -",
      "before dead s-dead 1", "after dead dead boom dead",
    }, events)
    for _, d in ipairs(durations) do assert.is_true(d >= 0) end
    local bad, err, code = app:before_process("not a function")
    assert.is_nil(bad)
    assert.are.equal("EINVAL", code)
    assert.is_string(err)
    w:close()
  end)

  it("lets an on_enqueue hook refuse a job", function()
    local app, q = h.fresh()
    assert(app:on_enqueue(function(job)
      if job:args()[1] < 0 then error("no negatives") end
    end))
    local id, err, code = app:enqueue("t", { -1 }, { queue = q })
    assert.is_nil(id)
    assert.are.equal("EINVAL", code)
    assert.matches("no negatives", err)
    assert(app:enqueue("t", { 1 }, { queue = q }))
    assert.are.equal(1, assert(app:stats(q)).pending)
  end)

  it("never calls Lua hooks from the engine's scheduler thread", function()
    local app, q = h.fresh()
    local enqueued, processed = 0, 0
    assert(app:on_enqueue(function() enqueued = enqueued + 1 end))
    assert(app:before_process(function() processed = processed + 1 end))
    assert(app:task("tick", function() return true end, { queue = q }))
    assert(app:schedule { task = "tick", every = 0.05, queue = q })
    local w = assert(app:worker { queues = { q } })
    local outcome
    repeat outcome = w:run_once(h.WAIT) until outcome == "done"
    w:close()
    assert.are.equal(0, enqueued) -- the scheduler thread enqueued it
    assert.is_true(processed >= 1) -- run_once runs on this thread
  end)

  it("round-trips large payloads that the engine stores compressed", function()
    local app, q = h.fresh()
    local big = string.rep("lua payload ", 2000)
    assert(app:task("echo", function(args) return { back = args[1] } end, { queue = q }))
    local id = assert(app:enqueue("echo", { big }, { queue = q }))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    local job = assert(app:wait(id, h.WAIT))
    assert.are.equal(big, job.result.back)
    assert.are.equal(big, job.args[1])
    w:close()
  end)
end)
