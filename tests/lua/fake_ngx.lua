-- Just enough of OpenResty's `ngx` API, over LuaSocket, to run runq.resty
-- outside nginx in busted. Blocking is fine here; the real cosocket path is
-- covered by tests/e2e/nginx. ngx.sha1_bin deliberately returns a name no
-- server knows, so every call exercises the NOSCRIPT -> EVAL fallback.
local socket = require "socket"

local Sock = {}
Sock.__index = Sock

function Sock:settimeouts(connect_ms, send_ms)
  self.timeout = math.max(connect_ms, send_ms) / 1000
end

function Sock:connect(host, port)
  local s, err
  if type(host) == "string" and host:match("^unix:") then
    s = require("socket.unix")()
    s:settimeout(self.timeout or 5)
    local ok, cerr = s:connect(host:sub(6))
    if not ok then return nil, cerr end
  else
    s, err = socket.tcp()
    if not s then return nil, err end
    s:settimeout(self.timeout or 5)
    local ok, cerr = s:connect(host, port)
    if not ok then return nil, cerr end
  end
  self.s = s
  return 1
end

local function flatten(t, out)
  for i = 1, #t do
    local v = t[i]
    if type(v) == "table" then flatten(v, out) else out[#out + 1] = tostring(v) end
  end
  return out
end

function Sock:send(data)
  if type(data) == "table" then data = table.concat(flatten(data, {})) end
  local n, err = self.s:send(data)
  if not n then return nil, err end
  return #data
end

function Sock:receive(pattern)
  return self.s:receive(pattern)
end

function Sock:getreusedtimes() return 0 end

function Sock:setkeepalive()
  self.s:close()
  return 1
end

function Sock:close()
  if self.s then self.s:close() end
  return 1
end

local ngx = {
  null = setmetatable({}, { __tostring = function() return "ngx.null" end }),
  socket = { tcp = function() return setmetatable({}, Sock) end },
  now = function() return socket.gettime() end,
  sha1_bin = function() return string.rep("\0", 20) end,
}

return ngx
