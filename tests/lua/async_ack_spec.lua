-- worker{async_ack = true} against the backend in RUNQ_TEST_URL.
local h = require "helper"

describe("async_ack (" .. h.url .. ")", function()
  it("returns done at once; stop waits for the acks, which are counted", function()
    local app, q = h.fresh()
    local ran = 0
    assert(app:task("t", function(args) ran = ran + 1; return args[1] * 2 end, { queue = q }))
    local items = {}
    for i = 1, 5 do items[i] = { "t", { i } } end
    local ids = assert(app:enqueue_many(items))
    local w = assert(app:worker { queues = { q }, concurrency = 2, async_ack = true })
    for _ = 1, 5 do assert.are.equal("done", w:run_once(h.WAIT)) end
    w:stop()
    assert.are.equal(5, ran)
    assert.are.equal(5, w:stats().processed)
    for i = 1, 5 do
      local job = assert(app:get(ids[i]))
      assert.are.equal("done", job.state)
      assert.are.equal(i * 2, job.result)
    end
    w:close()
  end)

  it("acks synchronously while an after_process hook is installed", function()
    local app, q = h.fresh()
    local outcomes = {}
    assert(app:after_process(function(job, outcome) outcomes[#outcomes + 1] = outcome end))
    assert(app:task("t", function() end, { queue = q }))
    assert(app:enqueue("t", {}))
    local w = assert(app:worker { queues = { q }, async_ack = true })
    assert.are.equal("done", w:run_once(h.WAIT))
    -- the hook ran inside run_once, after the ack
    assert.are.same({ "acked" }, outcomes)
    assert.are.equal(1, w:stats().processed)
    w:close()
  end)
end)
