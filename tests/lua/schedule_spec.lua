-- Periodic jobs from Lua (app:schedule) against the backend in
-- RUNQ_TEST_URL: two workers carry the same schedule and each fire time
-- runs once. Fire times are read from the job's unique key
-- ("periodic:<task>:<fire time ms>", docs/architecture.md), not the clock.
local h = require "helper"

describe("periodic jobs (" .. h.url .. ")", function()
  it("runs a job once per period with two workers", function()
    local app, q = h.fresh()
    local task = h.name("tick")
    local fires, by = {}, {}
    assert(app:task(task, function(args, job)
      local at = tonumber(job:unique_key():match(":(%d+)$"))
      fires[#fires + 1] = at
      by[#by + 1] = args[1]
    end, { queue = q }))
    assert(app:schedule { task = task, every = 1, args = { "hello" } })
    local w1 = assert(app:worker { queues = { q } })
    local w2 = assert(app:worker { queues = { q } })
    -- Alternate the two workers until three fire times ran (bounded so a
    -- broken scheduler fails instead of hanging).
    local deadline = os.time() + 30
    while #fires < 3 and os.time() < deadline do
      assert.is_not_nil(w1:run_once(0.05))
      assert.is_not_nil(w2:run_once(0.05))
    end
    assert.is_true(#fires >= 3)
    for i, at in ipairs(fires) do
      assert.are.equal(0, at % 1000) -- aligned to multiples of the period
      assert.are.equal("hello", by[i])
      if i > 1 then assert.is_true(at > fires[i - 1]) end -- never twice
    end
    w1:close()
    w2:close()
    local s = assert(app:stats(q))
    assert.is_true(s.pending <= 1) -- at most the fire that came after the loop
  end)

  it("accepts a cron schedule and refuses bad ones with EINVAL", function()
    local app = h.fresh()
    assert.is_true(app:schedule { task = "t", cron = "*/5 * * * *" })
    local ok, err, code = app:schedule { task = "t", cron = "61 * * * *" }
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.is_truthy(err:find("cron"))
    ok, err, code = app:schedule { task = "t", every = 1, cron = "* * * * *" }
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.is_truthy(err:find("exactly one"))
    ok, _, code = app:schedule { every = 1 }
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    ok, _, code = app:schedule { task = "t", every = 0 }
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    -- A worker carries the good schedule only.
    local w = assert(app:worker {})
    w:close()
  end)

  it("raises through runq.strict", function()
    local strict = require "runq.strict"
    local app = strict.new(h.url)
    assert.has_error(function() app:schedule { task = "t", cron = "x" } end)
  end)
end)
