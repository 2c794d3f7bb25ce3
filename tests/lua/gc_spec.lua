-- GC safety: finalizers in any order, no growth over many jobs.
local runq = require "runq"
local h = require "helper"

local function heap_kb()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

describe("runq GC safety (" .. h.url .. ")", function()
  it("collects apps, workers and handlers in any order", function()
    for i = 1, 50 do
      local app = assert(runq.new(h.url))
      local q = h.name("gc")
      assert(app:task("t", function() return i end, { queue = q }))
      local w = assert(app:worker { queues = { q } })
      assert(app:enqueue("t", {}))
      if i % 2 == 0 then
        assert.are.equal("done", w:run_once(h.WAIT))
      end
      -- Drop the app first: the worker keeps it (and its handlers) alive.
      app = nil -- luacheck: ignore
      collectgarbage("collect")
      if i % 2 == 1 then
        assert.are.equal("done", w:run_once(h.WAIT))
      end
      w = nil -- luacheck: ignore
      collectgarbage("collect")
    end
  end)

  it("unpins handlers when replaced, and when their app goes", function()
    local weak = setmetatable({}, { __mode = "k" })
    local app = assert(runq.new(h.url))
    local f = function() end
    weak[f] = "replaced"
    assert(app:task("t", f))
    assert(app:task("t", function() end))
    local g = function() end
    weak[g] = "closed"
    assert(app:task("u", g))
    f, g = nil, nil -- luacheck: ignore
    collectgarbage("collect")
    local left = {}
    for _, why in pairs(weak) do left[#left + 1] = why end
    assert.are.same({ "closed" }, left)
    assert(app:close())
    collectgarbage("collect")
    assert.is_nil(next(weak))

    local k = function() end
    weak[k] = "collected"
    assert(runq.new(h.url):task("t", k))
    k = nil -- luacheck: ignore
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(next(weak))
  end)

  it("does not grow over 10 000 jobs", function()
    local app, q = h.fresh()
    local payload = { "x", 1, { nested = { 1, 2, 3 } }, name = "job" }
    assert(app:task("t", function(args, job)
      return { args[1], job:attempt() }
    end, { queue = q }))
    local w = assert(app:worker { queues = { q } })
    local function batch(n)
      for _ = 1, n do
        assert(app:enqueue("t", payload))
        assert.are.equal("done", w:run_once(h.WAIT))
      end
    end
    batch(1000) -- warm up caches, interned strings, tables
    local before = heap_kb()
    batch(10000)
    local after = heap_kb()
    -- A leak of even one table per job would be hundreds of KB.
    assert.is_true(after - before < 128, ("heap grew by %.1f KB"):format(after - before))
  end)
end)
