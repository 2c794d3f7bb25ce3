-- msgpack codec: Lua values <-> msgpack and the args convention.
local runq = require "runq"
local core = require "runq.core"

describe("runq msgpack codec", function()
  local function roundtrip(v)
    local s = assert(runq.pack(v))
    local out, err = core.unpack(s)
    assert.is_nil(err)
    return out
  end

  it("round-trips scalars", function()
    for _, v in ipairs({ 0, 1, 127, 128, 255, 256, 65535, 65536, 2^31, 2^40,
                         -1, -32, -33, -128, -129, -32768, -32769, -2^31 - 1, -2^40 }) do
      assert.are.equal(v, roundtrip(v))
    end
    assert.are.equal(1.5, roundtrip(1.5))
    assert.are.equal(-0.25, roundtrip(-0.25))
    assert.are.equal(true, roundtrip(true))
    assert.are.equal(false, roundtrip(false))
    assert.are.equal("", roundtrip(""))
    assert.are.equal("hello", roundtrip("hello"))
    local long = string.rep("x", 70000)
    assert.are.equal(long, roundtrip(long))
    assert.are.equal("a\0b\255", roundtrip("a\0b\255"))
  end)

  it("round-trips nested tables", function()
    local v = { 1, "two", { three = 3, list = { true, false } }, { { {} } } }
    assert.are.same(v, roundtrip(v))
    local big = {}
    for i = 1, 1000 do big[i] = i end
    assert.are.same(big, roundtrip(big))
    local map = {}
    for i = 1, 100 do map["k" .. i] = i end
    assert.are.same(map, roundtrip(map))
  end)

  it("encodes sequences as arrays and other tables as maps", function()
    assert.are.equal("\147\1\2\3", runq.pack({ 1, 2, 3 }))
    assert.are.equal("\128", runq.pack({}))
    assert.are.equal("\129\161a\1", runq.pack({ a = 1 }))
    -- sparse integer keys are a map, not an array with holes
    assert.are.equal(0x81, runq.pack({ [2] = 1 }):byte(1))
  end)

  it("rejects values msgpack cannot carry, with a clear message", function()
    local v, err = runq.pack({ f = print })
    assert.is_nil(v)
    assert.matches("cannot encode a function", err)
    v, err = runq.pack({ io.stdout })
    assert.is_nil(v)
    assert.matches("cannot encode a userdata", err)
    v, err = runq.pack(coroutine.create(print))
    assert.is_nil(v)
    assert.matches("cannot encode a thread", err)
    local t = { 1 }
    t[2] = t
    v, err = runq.pack(t)
    assert.is_nil(v)
    assert.matches("cyclic", err)
    local deep = {}
    local cur = deep
    for _ = 1, 100 do cur[1] = {}; cur = cur[1] end
    v, err = runq.pack(deep)
    assert.is_nil(v)
    assert.matches("nested deeper", err)
  end)

  it("sends UTF-8 text as str and other bytes as bin", function()
    assert.are.equal("\163h\195\169", runq.pack("h\195\169"))   -- "hé"
    assert.are.equal("\196\2\255\0", runq.pack("\255\0"))
    assert.are.equal("\196\2\237\160", runq.pack("\237\160")) -- truncated
    assert.are.equal("\196\3\237\160\128", runq.pack("\237\160\128")) -- surrogate
    assert.are.equal("\196\2\192\128", runq.pack("\192\128")) -- overlong
    assert.are.equal("\164\240\159\152\128", runq.pack("\240\159\152\128"))
  end)

  it("allows shared (non-cyclic) subtables", function()
    local s = { 1 }
    assert.are.same({ s, s }, roundtrip({ s, s }))
  end)

  it("reports malformed input", function()
    local v, err = core.unpack("\220\0\5\1")
    assert.is_nil(v)
    assert.matches("truncated", err)
    v, err = core.unpack("\1\2")
    assert.is_nil(v)
    assert.matches("trailing", err)
    v, err = core.unpack("\199\1\1\1")
    assert.is_nil(v)
    assert.matches("unsupported msgpack type", err)
    v, err = core.unpack("\129\192\1")
    assert.is_nil(v)
    assert.matches("nil or NaN", err)
  end)

  it("splits args into [positional, kwargs]", function()
    local s = assert(core.pack({ 1, "b", x = 3 }, true))
    local raw = assert(core.unpack(s))
    assert.are.same({ { 1, "b" }, { x = 3 } }, raw)
    assert.are.equal("\146\144\128", core.pack(nil, true))
    assert.are.same({ 1, "b", x = 3 }, core.unpack(s, true))
    local v, err = core.pack(42, true)
    assert.is_nil(v)
    assert.matches("args must be a table", err)
  end)

  it("hashes with FNV-1a 64", function()
    assert.are.equal("cbf29ce484222325", core.hash(""))
    assert.are.equal("af63dc4c8601ec8c", core.hash("a"))
  end)
end)
