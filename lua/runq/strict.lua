-- runq.strict: the runq API where failures raise errors instead of
-- returning nil, err, code (like cjson vs cjson.safe, the other way round).
--
--   local runq = require "runq.strict"
--   local app = runq.new()            -- raises on a bad URL
--   local id = app:enqueue("t", {1})  -- raises on failure
local runq = require "runq"

local error, setmetatable, pairs = error, setmetatable, pairs
local unpack = table.unpack or unpack

local function raising(f)
  return function(...)
    local r = { n = 0 }
    local function collect(...)
      r.n = select("#", ...)
      for i = 1, r.n do r[i] = (select(i, ...)) end
    end
    collect(f(...))
    if r[1] == nil and r[2] ~= nil then
      error(r[2], 2)
    end
    return unpack(r, 1, r.n)
  end
end

local function wrap_class(cls)
  local strict = {}
  for k, v in pairs(cls) do
    if type(v) == "function" and k ~= "__index" then
      strict[k] = raising(v)
    end
  end
  strict.__index = strict
  return strict
end

local StrictWorker = wrap_class(runq.Worker)
local StrictApp = wrap_class(runq.App)

local worker = StrictApp.worker
function StrictApp:worker(opts)
  return setmetatable(worker(self, opts), StrictWorker)
end

local _M = setmetatable({}, { __index = runq })

function _M.new(url, opts)
  local app, err = runq.new(url, opts)
  if not app then
    error(err, 2)
  end
  return setmetatable(app, StrictApp)
end

_M.pack = raising(runq.pack)
_M.unpack = raising(runq.unpack)

return _M
