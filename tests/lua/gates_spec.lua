-- Queue gates from Lua against the backend in RUNQ_TEST_URL: manual
-- pause/resume and the concurrency limit. Safety properties only; waits are
-- upper bounds.
local runq = require "runq"
local h = require "helper"

describe("queue gates (" .. h.url .. ")", function()
  it("holds a paused queue's jobs until resume", function()
    local app, q = h.fresh()
    local ran = 0
    assert(app:task("t", function() ran = ran + 1 end, { queue = q }))
    assert(app:pause(q))
    local id = assert(app:enqueue("t", {}))           -- enqueue still works
    local st = assert(app:stats(q))
    assert.are.equal("manual", st.paused)
    assert.are.equal(1, st.pending)
    local w = assert(app:worker { queues = { q } })
    assert.is_false(w:run_once(0.3))
    assert.are.equal(0, ran)
    assert(app:resume(q))
    assert.are.equal("none", assert(app:stats(q)).paused)
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.equal("done", assert(app:get(id)).state)
    w:close()
  end)

  it("leases no more than concurrency_limit jobs at once", function()
    local app, q = h.fresh()
    assert(app:configure(q, { concurrency_limit = 1 }))
    local other = assert(app:worker { queues = { q } })
    local inner
    assert(app:task("t", function(args)
      if args[1] == 1 then
        -- While this job holds the queue's one slot, another worker gets nothing.
        inner = other:run_once(0.3)
      end
    end, { queue = q }))
    assert(app:enqueue("t", { 1 }))
    assert(app:enqueue("t", { 2 }))
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.is_false(inner)
    assert.are.equal("done", other:run_once(h.WAIT))  -- the slot is free again
    w:close()
    other:close()
  end)

  it("rejects bad gate options with EINVAL", function()
    local app, q = h.fresh()
    local ok, err, code = app:configure(q, { rate_limit = 5, rate_period = 0 })
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.matches("rate_period", err)
    ok, err, code = app:configure(q, { rate_limit = 5, rate_period = 1, pause_after_failures = -1 })
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
  end)
end)
