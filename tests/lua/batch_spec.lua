-- app:enqueue_many against the backend in RUNQ_TEST_URL (memory:// default).
local h = require "helper"

describe("enqueue_many (" .. h.url .. ")", function()
  it("enqueues every item in order with its own args and options", function()
    local app, q = h.fresh()
    local other = h.name("q")
    local seen = {}
    assert(app:task("t", function(args, job) seen[#seen + 1] = { args[1], job:queue() } end,
      { queue = q }))
    local ids, errs, codes = app:enqueue_many {
      { "t", { 1 } },
      { "t", { 2 }, { priority = 5 } },
      { "t", { 3 }, { queue = other, meta = { k = "v" } } },
      { "t" },
    }
    assert.is_nil(errs)
    assert.is_nil(codes)
    assert.are.equal(4, #ids)
    for i = 1, 4 do assert.are.equal(26, #ids[i]) end
    assert.are.equal("pending", assert(app:get(ids[1])).state)
    local snap = assert(app:get(ids[3]))
    assert.are.equal(other, snap.queue)
    assert.are.same({ k = "v" }, snap.meta)
    local w = assert(app:worker { queues = { q } })
    for _ = 1, 3 do assert.are.equal("done", w:run_once(h.WAIT)) end
    assert.is_false(w:run_once(0))
    w:close()
    -- priority first, then FIFO; the third went to the other queue
    assert.are.same({ { 2, q }, { 1, q }, { nil, q } }, seen)
    assert.are.equal(1, assert(app:stats(other)).pending)
  end)

  it("reports per-item failures and still enqueues the others", function()
    local app, q = h.fresh()
    assert(app:task("t", function() end, { queue = q }))
    local key = h.name("k")
    local held = assert(app:enqueue("t", { 0 }, { unique_key = key }))
    local ids, errs, codes = app:enqueue_many {
      { "t", { 1 } },
      { "t", { 2 }, { unique_key = key } },
      { "nosuch.task.is.fine", { 3 }, { queue = q } },
    }
    assert.are.equal(3, #ids)
    assert.are.equal(26, #ids[1])
    assert.is_false(ids[2])
    assert.are.equal("EDUPLICATE", codes[2])
    assert.truthy(errs[2]:find(held, 1, true))
    assert.are.equal(26, #ids[3])
    assert.is_nil(codes[1])
    assert.is_nil(errs[3])
    assert.are.equal(3, assert(app:stats(q)).pending)
  end)

  it("refuses a malformed item before enqueueing anything", function()
    local app, q = h.fresh()
    assert(app:task("t", function() end, { queue = q }))
    local cases = {
      { { { "t", { 1 } }, "not a table" }, "item 2 must be a table" },
      { { { "t", { 1 } }, { 42 } }, "item 2: task name must be a string" },
      { { { "t", "x" } }, "item 1: args must be a table" },
      { { { "t", {}, { priority = "high" } } }, "item 1:" },
      { { { "t", {}, 7 } }, "item 1: enqueue options must be a table" },
      { { { "t", {}, { meta = { k = 1 } } } }, "item 1: option 'meta'" },
    }
    for _, c in ipairs(cases) do
      local ids, err, code = app:enqueue_many(c[1])
      assert.is_nil(ids)
      assert.are.equal("EINVAL", code)
      assert.truthy(err:find(c[2], 1, true), err)
    end
    local ids, err, code = app:enqueue_many("nope")
    assert.is_nil(ids)
    assert.are.equal("EINVAL", code)
    assert.is_string(err)
    assert.are.equal(0, assert(app:stats(q)).pending)
    assert.are.same({}, assert(app:enqueue_many {}))
  end)

  it("runs on_enqueue hooks once per item; a refusal fails only that item", function()
    local app, q = h.fresh()
    assert(app:task("t", function() end, { queue = q }))
    local calls = 0
    assert(app:on_enqueue(function(job)
      calls = calls + 1
      if job:args()[1] == "bad" then error("refused by hook") end
    end))
    local ids, errs, codes = app:enqueue_many {
      { "t", { "ok" }, { queue = q } },
      { "t", { "bad" }, { queue = q } },
    }
    assert.are.equal(2, calls)
    assert.are.equal(26, #ids[1])
    assert.is_false(ids[2])
    assert.is_string(codes[2])
    assert.is_string(errs[2])
    assert.are.equal(1, assert(app:stats(q)).pending)
  end)
end)
