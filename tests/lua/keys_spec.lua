-- Per-key interval limit (rate_key + rate_interval) and unique-until-done
-- against the backend in RUNQ_TEST_URL. Start times are the backend's lease
-- times (job:leased_at()), never the test's clock.
local h = require "helper"

local function ms(seconds) return math.floor(seconds * 1000 + 0.5) end

describe("rate keys and unique-until-done (" .. h.url .. ")", function()
  it("starts jobs of one rate key at least an interval apart, in order", function()
    local app, q = h.fresh()
    local starts = {}
    assert(app:task("call", function(args, job)
      starts[#starts + 1] = { at = ms(job:leased_at()), n = args[1], key = job:rate_key(),
                              interval = ms(job:rate_interval()) }
    end, { queue = q }))
    for i = 1, 3 do
      assert(app:enqueue("call", { i }, { rate_key = "tenant:1", rate_interval = 0.2 }))
    end
    local w = assert(app:worker { queues = { q } })
    for _ = 1, 3 do assert.are.equal("done", w:run_once(h.WAIT)) end
    for i = 1, 3 do
      assert.are.equal(i, starts[i].n)
      assert.are.equal("tenant:1", starts[i].key)
      assert.are.equal(200, starts[i].interval)
      if i > 1 then assert.is_true(starts[i].at - starts[i - 1].at >= 200) end
    end
    w:close()
  end)

  it("never lets a waiting key hold up other keys or unkeyed jobs", function()
    local app, q = h.fresh()
    local seen = {}
    assert(app:task("call", function(args) seen[#seen + 1] = args[1] end, { queue = q }))
    for i = 1, 4 do
      assert(app:enqueue("call", { "a" .. i }, { rate_key = "A", rate_interval = 60 }))
    end
    assert(app:enqueue("call", { "b" }, { rate_key = "B", rate_interval = 60 }))
    assert(app:enqueue("call", { "plain" }))
    local w = assert(app:worker { queues = { q } })
    for _ = 1, 3 do assert.are.equal("done", w:run_once(h.WAIT)) end
    table.sort(seen)
    assert.are.same({ "a1", "b", "plain" }, seen)
    assert.is_false(w:run_once(0.3)) -- A waits out its 60 s
    assert.are.equal(3, assert(app:stats(q)).pending)
    w:close()
  end)

  it("refuses a rate key without an interval and until-done without a key", function()
    local app = h.fresh()
    local id, err, code = app:enqueue("call", {}, { rate_key = "k" })
    assert.is_nil(id)
    assert.are.equal("EINVAL", code)
    assert.matches("rate_interval", err)
    id, err, code = app:enqueue("call", {}, { unique_until_done = true })
    assert.is_nil(id)
    assert.are.equal("EINVAL", code)
    assert.matches("unique_key", err)
    _, _, code = app:enqueue("call", {}, { unique_key = "u", unique_until_done = "yes" })
    assert.are.equal("EINVAL", code)
  end)

  it("holds a unique key until the job is done or dead", function()
    local app, q = h.fresh()
    local opts = { unique_key = h.name("acct"), unique_until_done = true }
    local while_running
    assert(app:task("sync", function(args)
      if args[1] == 1 then while_running = { select(3, app:enqueue("sync", { 2 }, opts)) } end
      if args[1] == 3 then error("fatal") end
      return args[1]
    end, { queue = q, max_retries = 0 }))
    local id1 = assert(app:enqueue("sync", { 1 }, opts))
    assert.is_true(assert(app:get(id1)).unique_until_done)
    local _, _, code, holder = app:enqueue("sync", { 2 }, opts)
    assert.are.equal("EDUPLICATE", code) -- pending
    assert.are.equal(id1, holder)
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.same({ "EDUPLICATE", id1 }, while_running) -- running
    local id3 = assert(app:enqueue("sync", { 3 }, opts)) -- done: free at once
    assert.are.equal("failed", w:run_once(h.WAIT))
    assert.are.equal("dead", assert(app:get(id3)).state)
    local id4 = assert(app:enqueue("sync", { 4 }, opts)) -- dead: free too
    assert.are_not.equal(id3, id4)
    w:close()
  end)

  it("once_in accepts the same job again in the next period", function()
    local app, q = h.fresh()
    local task = h.name("digest")
    local socket = require "socket"
    local function next_bucket() -- the producer's clock picks the bucket
      local b = math.floor(socket.gettime())
      while math.floor(socket.gettime()) == b do socket.sleep(0.002) end
    end
    next_bucket()
    local id1 = assert(app:enqueue(task, { 1 }, { queue = q, once_in = 1 }))
    local _, _, code, holder = app:enqueue(task, { 1 }, { queue = q, once_in = 1 })
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id1, holder)
    next_bucket()
    local id2 = assert(app:enqueue(task, { 1 }, { queue = q, once_in = 1 }))
    assert.are_not.equal(id1, id2)
    assert.are_not.equal(assert(app:get(id1)).unique_key, assert(app:get(id2)).unique_key)
  end)
end)
