-- runq.resty (the OpenResty producer) against a private Redis, with a fake
-- `ngx` over LuaSocket; its jobs must be what the C client and worker expect.
local h = require "helper"

-- The producer speaks to Redis only: this file runs in the redis:// pass of
-- tests/lua/run.sh and defines nothing in the memory:// pass.
if not h.is_redis then return end

describe("runq.resty (" .. h.url .. ")", function()
  local runq = require "runq"
  local resty

  setup(function()
    _G.ngx = require "fake_ngx"
    package.loaded["runq.resty"] = nil
    resty = require "runq.resty"
  end)

  teardown(function()
    _G.ngx = nil
    package.loaded["runq.resty"] = nil
  end)

  local function redis_cli(...)
    local cmd = { "redis-cli", "-p", assert(os.getenv("RUNQ_TEST_REDIS_PORT")) }
    for _, a in ipairs({ ... }) do cmd[#cmd + 1] = "'" .. a .. "'" end
    local f = assert(io.popen(table.concat(cmd, " ")))
    local out = f:read("*a")
    f:close()
    return out
  end

  it("enqueues jobs a C worker runs, args and kwargs intact", function()
    local app, q = h.fresh()
    local p = assert(resty.new(h.url))
    local got
    assert(app:task("sum", function(args) got = args; return args[1] + args[2] end, { queue = q }))
    local id = assert(p:enqueue("sum", { 4, 5, note = "hi" }, { queue = q, priority = 3 }))
    assert.are.equal(26, #id)
    local snap = assert(app:get(id))
    assert.are.equal("pending", snap.state)
    assert.are.equal(3, snap.priority)
    assert.are.equal(3, snap.max_retries)
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.same({ 4, 5, note = "hi" }, got)
    assert.are.equal(9, assert(app:wait(id, h.WAIT)).result)
  end)

  it("carries metadata to a C worker's job", function()
    local app, q = h.fresh()
    local p = assert(resty.new(h.url))
    local seen
    assert(app:task("m", function(_, job) seen = job:meta() return true end, { queue = q }))
    local id = assert(p:enqueue("m", {}, { queue = q, meta = { traceparent = "00-ab-cd-01" } }))
    assert.are.same({ traceparent = "00-ab-cd-01" }, assert(app:get(id)).meta)
    local w = assert(app:worker { queues = { q } })
    assert.are.equal("done", w:run_once(h.WAIT))
    assert.are.same({ traceparent = "00-ab-cd-01" }, seen)
    local none, _, code = p:enqueue("m", {}, { queue = q, meta = { k = 1 } })
    assert.is_nil(none)
    assert.are.equal("EINVAL", code)
    w:close()
  end)

  it("schedules delayed jobs and honours max_retries", function()
    local app, q = h.fresh()
    local p = assert(resty.new(h.url))
    local id = assert(p:enqueue("t", {}, { queue = q, delay = 3600, max_retries = 7 }))
    local snap = assert(app:get(id))
    assert.are.equal("scheduled", snap.state)
    assert.are.equal(7, snap.max_retries)
    assert.is_true(snap.eta > snap.created_at)
  end)

  it("shares unique and once_in keys with the C client", function()
    local app, q = h.fresh()
    local p = assert(resty.new(h.url))
    local key = h.name("k")
    local id1 = assert(p:enqueue("t", { 1 }, { queue = q, unique_key = key }))
    local id2, _, code, holder = p:enqueue("t", { 1 }, { queue = q, unique_key = key })
    assert.is_nil(id2)
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id1, holder)
    _, _, code, holder = app:enqueue("t", { 1 }, { queue = q, unique_key = key })
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id1, holder)

    local task = h.name("once")
    local id3 = assert(p:enqueue(task, { 1, x = 2 }, { queue = q, once_in = 1000000 }))
    _, _, code, holder = app:enqueue(task, { 1, x = 2 }, { queue = q, once_in = 1000000 })
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id3, holder)
    assert(p:enqueue(task, { 2 }, { queue = q, once_in = 1000000 }))
  end)

  it("never holds a unique key forever when unique_ttl is 0", function()
    local _, q = h.fresh()
    local p = assert(resty.new(h.url))
    local key = h.name("k")
    assert(p:enqueue("t", { 1 }, { queue = q, unique_key = key, unique_ttl = 0 }))
    local pttl = tonumber(redis_cli("PTTL", "{runq:" .. q .. "}:unique:" .. key))
    assert.is_true(pttl > 0 and pttl <= 24 * 3600 * 1000, "PTTL " .. tostring(pttl))
  end)

  it("sends large integers as plain decimals", function()
    local _, q = h.fresh()
    local p = assert(resty.new(h.url))
    -- 10^15 ms: LuaJIT's tostring gives "1e+15", stored as sent, which the
    -- C reader would take for a corrupt field.
    local id = assert(p:enqueue("t", { 1 }, { queue = q, timeout = 1e12 }))
    -- The job record (version 2) in {runq:Q}:jobs starts
    -- "2|maxr|prio|created|eta|timeout|...": the 6th header field.
    local rec = redis_cli("HGET", "{runq:" .. q .. "}:jobs", id)
    local v, timeout = rec:match("^(%d+)|%d+|%-?%d+|%d+|%d+|([^|]*)|")
    assert.are.equal("2", v, "record: " .. rec)
    assert.are.equal("1000000000000000", timeout)
  end)

  it("reports durability when replicas do not confirm", function()
    local app, q = h.fresh()
    local p = assert(resty.new(h.url))
    local id, err, code, written = p:enqueue("t", {}, { queue = q, replicate = 1,
                                                        replicate_timeout = 0.01 })
    assert.is_nil(id)
    assert.are.equal("EDURABILITY", code)
    assert.matches("replicas", err)
    assert.are.equal("pending", assert(app:get(written)).state)
  end)

  it("selects the database and authenticates from the URL", function()
    local port = os.getenv("RUNQ_TEST_REDIS_PORT")
    local user, pass = h.name("u"), h.name("p")
    assert.matches("OK", redis_cli("ACL", "SETUSER", user, "on", ">" .. pass, "~*", "&*", "+@all"))
    local q = h.name("q")
    local p = assert(resty.new(("redis://%s:%s@127.0.0.1:%s/3"):format(user, pass, port)))
    local id = assert(p:enqueue("t", {}, { queue = q }))
    local in3 = assert(runq.new(("redis://127.0.0.1:%s/3"):format(port)))
    assert.are.equal(id, assert(in3:get(id)).id)
    local in0 = assert(runq.new(("redis://127.0.0.1:%s/0"):format(port)))
    local _, _, code = in0:get(id)
    assert.are.equal("ENOTFOUND", code)
    local bad = assert(resty.new(("redis://%s:wrong@127.0.0.1:%s/0"):format(user, port)))
    local r, err, ecode = bad:enqueue("t", {}, { queue = q })
    assert.is_nil(r)
    assert.are.equal("EIO", ecode)
    assert.matches("AUTH", err)
    redis_cli("ACL", "DELUSER", user)
  end)

  it("rejects bad input and bad URLs with nil, err, code", function()
    local p = assert(resty.new(h.url))
    local cases = {
      { "t", { print } },
      { "t", 42 },
      { "bad name", {} },
      { "t", {}, { queue = "{x}" } },
      { "t", {}, { delay = -1 } },
      { "t", {}, { priority = 0.5 } },
      { "t", {}, { unique_key = 5 } },
      { "t", {}, { once_in = 5, unique_key = "k" } },
    }
    for i, c in ipairs(cases) do
      local id, err, code = p:enqueue(c[1], c[2], c[3])
      assert.is_nil(id, "case " .. i)
      assert.is_string(err, "case " .. i)
      assert.are.equal("EINVAL", code, "case " .. i)
    end
    local _, err = p:enqueue("t", { f = print })
    assert.matches("cannot encode a function", err)
    local r, _, code = resty.new("http://x")
    assert.is_nil(r)
    assert.are.equal("EURL", code)
    assert.has_error(function() p:enqueue_or_error("t", { print }) end)
  end)

  it("enqueues rate-keyed and unique-until-done jobs the C worker honours", function()
    local app, q = h.fresh()
    local p = assert(resty.new(h.url))
    local starts = {}
    assert(app:task("call", function(_, job)
      starts[#starts + 1] = math.floor(job:leased_at() * 1000 + 0.5) -- backend lease time, ms
    end, { queue = q }))
    local key = h.name("u")
    local id1 = assert(p:enqueue("call", { 1 }, { queue = q, rate_key = "k", rate_interval = 0.2,
                                                  unique_key = key, unique_until_done = true }))
    local _, _, code, holder = app:enqueue("call", { 2 }, { queue = q, unique_key = key })
    assert.are.equal("EDUPLICATE", code)
    assert.are.equal(id1, holder)
    assert(p:enqueue("call", { 3 }, { queue = q, rate_key = "k", rate_interval = 0.2 }))
    local snap = assert(app:get(id1))
    assert.are.equal("k", snap.rate_key)
    assert.is_true(snap.unique_until_done)
    local w = assert(app:worker { queues = { q } })
    for _ = 1, 2 do assert.are.equal("done", w:run_once(h.WAIT)) end
    assert.is_true(starts[2] - starts[1] >= 200)
    -- Done: the until-done key is free again.
    assert(p:enqueue("call", { 4 }, { queue = q, unique_key = key, unique_until_done = true }))
    local _, err, c2 = p:enqueue("call", {}, { queue = q, rate_key = "k" })
    assert.are.equal("EINVAL", c2)
    assert.matches("rate_interval", err)
    w:close()
  end)

  it("reports an unreachable server as EIO", function()
    -- A port that was free a moment ago: nothing listens there.
    local s = require("socket").bind("127.0.0.1", 0)
    local _, port = s:getsockname()
    s:close()
    local p = assert(resty.new("redis://127.0.0.1:" .. port))
    local id, err, code = p:enqueue("t", {})
    assert.is_nil(id)
    assert.are.equal("EIO", code)
    assert.matches("connect", err)
  end)
end)
