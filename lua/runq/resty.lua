-- runq.resty: a non-blocking runq producer for OpenResty (nginx + lua-nginx-
-- module, LuaJIT).
--
-- The C client blocks on its sockets, which would stall the nginx event
-- loop, so this producer talks RESP itself over ngx.socket.tcp cosockets and
-- runs the very same server script as the C Redis backend (enqueue.lua,
-- taken byte for byte from runq.core, so EVALSHA names agree). runq.core is
-- used only for CPU work here: msgpack, job ids, the once_in hash.
--
--   local producer = require("runq.resty").new("redis://127.0.0.1:6380/0")
--   local id, err, code = producer:enqueue("mail.send", {to = "a@b"}, {queue = "mail"})
--
-- Each call takes a pooled connection and gives it back (setkeepalive), so
-- a producer may be created once per worker (init_worker) and shared by
-- requests. Errors: nil, message, code as in runq; durations in seconds.
local core = require "runq.core"

local ngx = ngx
local tcp = ngx.socket.tcp
local tostring, tonumber, type, pairs = tostring, tonumber, type, pairs
local floor, sub, byte, format = math.floor, string.sub, string.byte, string.format

local _M = { _VERSION = core._VERSION }
local mt = { __index = _M }

local DEFAULT_MAX_RETRIES = 3            -- runq.h: -1 -> 3 when unregistered
local DEFAULT_UNIQUE_TTL_MS = 24 * 3600 * 1000
local DEFAULT_MAX_PAYLOAD = 1024 * 1024  -- RUNQ_CLIENT_OPTIONS_INIT

-- Script text and its SHA-1 name, computed once per nginx worker.
local enqueue_src = assert(core.script("enqueue"))
local function hex(s)
  return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end
local enqueue_sha = hex(ngx.sha1_bin(enqueue_src))

local function unescape(s)
  return s and (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- redis://[user:pass@]host[:port][/db][?connect_timeout=ms&timeout=ms]
-- unix:///path/to/redis.sock[?db=N]
local function parse_url(url)
  local cfg = { connect_timeout = 2000, timeout = 5000, db = 0 }
  local rest, query = url:match("^([^?]*)%??(.*)$")
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if k == "connect_timeout" or k == "timeout" or k == "db" then
      cfg[k] = tonumber(v)
      if not cfg[k] then return nil, "bad " .. k .. " in URL" end
    end
  end
  local path = rest:match("^unix://(/.+)$")
  if path then
    cfg.path = "unix:" .. path
    return cfg
  end
  local body = rest:match("^redis://(.*)$")
  if not body then
    return nil, "unsupported URL (want redis://host[:port][/db] or unix:///path)"
  end
  local auth, after = body:match("^([^@/]*)@(.*)$")
  if auth then
    local user, pass = auth:match("^([^:]*):?(.*)$")
    cfg.user = unescape(user ~= "" and user or nil)
    cfg.password = unescape(pass ~= "" and pass or nil)
    if cfg.password == nil then cfg.password, cfg.user = cfg.user, nil end
    body = after
  end
  local hostport, db = body:match("^([^/]+)/?(%d*)$")
  if not hostport then
    return nil, "unsupported URL (want redis://host[:port][/db] or unix:///path)"
  end
  local host, port = hostport:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
  cfg.host, cfg.port = host, tonumber(port) or 6379
  if db ~= "" then cfg.db = tonumber(db) end
  return cfg
end

-- runq.resty.new(url, opts) -> producer | nil, err, code
-- opts: pool_size, keepalive (seconds idle), max_payload (bytes)
function _M.new(url, opts)
  local cfg, err = parse_url(url or "")
  if not cfg then return nil, err, "EURL" end
  opts = opts or {}
  cfg.pool = "runq:" .. url
  cfg.pool_size = opts.pool_size or 32
  cfg.keepalive_ms = (opts.keepalive or 60) * 1000
  cfg.max_payload = opts.max_payload or DEFAULT_MAX_PAYLOAD
  return setmetatable({ cfg = cfg }, mt)
end

-- ------------------------------------------------------------------
-- RESP

local function command(args)
  local out = { "*", #args, "\r\n" }
  for i = 1, #args do
    -- Integers as plain decimals: the scripts store them as sent, and
    -- LuaJIT's tostring switches to exponent form past 14 digits.
    local a = args[i]
    if type(a) == "number" and a == floor(a) then a = format("%d", a) else a = tostring(a) end
    out[#out + 1] = "$"
    out[#out + 1] = #a
    out[#out + 1] = "\r\n"
    out[#out + 1] = a
    out[#out + 1] = "\r\n"
  end
  return out
end

-- Returns value, or nil, err (a Redis error reply comes back as
-- false, message so callers can tell it from an I/O error).
local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local kind, rest = sub(line, 1, 1), sub(line, 2)
  if kind == "+" then
    return rest
  elseif kind == "-" then
    return false, rest
  elseif kind == ":" then
    return tonumber(rest)
  elseif kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return ngx.null end
    local data, rerr = sock:receive(n + 2)
    if not data then return nil, rerr end
    return sub(data, 1, n)
  elseif kind == "*" then
    local n = tonumber(rest)
    if n < 0 then return ngx.null end
    local arr = {}
    for i = 1, n do
      local v, verr = read_reply(sock)
      if v == nil then return nil, verr end
      if v == false then v = { err = verr } end
      arr[i] = v
    end
    return arr
  end
  return nil, "bad RESP reply: " .. line
end

local function connect(self)
  local cfg = self.cfg
  local sock = tcp()
  sock:settimeouts(cfg.connect_timeout, cfg.timeout, cfg.timeout)
  local ok, err
  local copts = { pool = cfg.pool, pool_size = cfg.pool_size }
  if cfg.path then
    ok, err = sock:connect(cfg.path, copts)
  else
    ok, err = sock:connect(cfg.host, cfg.port, copts)
  end
  if not ok then return nil, "connect: " .. tostring(err) end
  -- A pooled connection is already authenticated and on the right db.
  if sock:getreusedtimes() == 0 then
    local setup = {}
    if cfg.password then
      setup[#setup + 1] = cfg.user and { "AUTH", cfg.user, cfg.password }
                          or { "AUTH", cfg.password }
    end
    if cfg.db ~= 0 then setup[#setup + 1] = { "SELECT", cfg.db } end
    for _, c in ipairs(setup) do
      local _, serr = sock:send(command(c))
      if serr then sock:close(); return nil, serr end
      local v, rerr = read_reply(sock)
      if not v then sock:close(); return nil, c[1] .. ": " .. tostring(rerr) end
    end
  end
  return sock
end

local function release(self, sock)
  sock:setkeepalive(self.cfg.keepalive_ms, self.cfg.pool_size)
end

-- Run one command; returns reply | nil, err, code. Redis error replies are
-- returned as nil, message, "EIO" after the connection is returned.
local function call(self, sock, args)
  local _, err = sock:send(command(args))
  if err then return nil, err end
  return read_reply(sock)
end

-- ------------------------------------------------------------------
-- enqueue

local function check_name(name, what)
  if type(name) ~= "string" or #name == 0 or #name > 128 or name:find("[^\33-\126]")
     or name:find("[{}]") then
    return nil, format("invalid %s name %q: printable ASCII without spaces or braces, at most 128 bytes",
                       what, tostring(name))
  end
  return true
end

local function ms(opts, k)
  local v = opts[k]
  if v == nil then return nil end
  if type(v) ~= "number" or v < 0 or v ~= v then
    return nil, "option '" .. k .. "' must be a non-negative number of seconds"
  end
  return floor(v * 1000 + 0.5)
end

local function int(opts, k, lo, hi)
  local v = opts[k]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
    return nil, format("option '%s' must be an integer in [%d, %d]", k, lo, hi)
  end
  return v
end

-- producer:enqueue(task, args, opts) -> id | nil, err, code[, existing_id]
-- Same arguments and options as app:enqueue in runq (except per-task
-- defaults, which a producer does not know: max_retries 3, no timeout,
-- unique_ttl 24 h unless given).
function _M.enqueue(self, task, args, opts)
  opts = opts or {}
  if type(opts) ~= "table" then return nil, "enqueue options must be a table", "EINVAL" end
  local ok, err = check_name(task, "task")
  if not ok then return nil, err, "EINVAL" end
  local queue = opts.queue or "default"
  ok, err = check_name(queue, "queue")
  if not ok then return nil, err, "EINVAL" end
  if args ~= nil and type(args) ~= "table" then
    return nil, "args must be a table (got " .. type(args) .. ")", "EINVAL"
  end
  local payload, perr = core.pack(args, true)
  if not payload then return nil, perr, "EINVAL" end
  if #payload > self.cfg.max_payload then
    return nil, "payload exceeds max_payload", "ETOOBIG"
  end

  local v = {}
  for _, k in ipairs({ "delay", "eta", "timeout", "ttl", "deadline", "unique_ttl",
                       "once_in", "replicate_timeout", "rate_interval" }) do
    v[k], err = ms(opts, k)
    if err then return nil, err, "EINVAL" end
  end
  local priority, max_retries, replicate
  priority, err = int(opts, "priority", -2147483648, 2147483647)
  if err then return nil, err, "EINVAL" end
  max_retries, err = int(opts, "max_retries", 0, 2147483647)
  if err then return nil, err, "EINVAL" end
  replicate, err = int(opts, "replicate", 0, 64)
  if err then return nil, err, "EINVAL" end
  local ukey = opts.unique_key
  if ukey ~= nil and type(ukey) ~= "string" then
    return nil, "option 'unique_key' must be a string", "EINVAL"
  end
  local unique_ttl = v.unique_ttl
  if v.once_in then
    if v.once_in <= 0 then return nil, "option 'once_in' must be positive", "EINVAL" end
    if ukey then return nil, "options 'once_in' and 'unique_key' are exclusive", "EINVAL" end
    -- Same key as runq.core builds, so C and nginx producers dedupe together.
    local now = floor(ngx.now() * 1000)
    ukey = format("once:%s:%s:%d", task, core.hash(payload), floor(now / v.once_in))
    unique_ttl = unique_ttl or v.once_in
  end
  -- Per-key interval limit and unique-until-done: the same rules as the C
  -- client (runq.h, runq_enqueue_options version 3).
  local rkey, uud = opts.rate_key, opts.unique_until_done
  if rkey ~= nil and (type(rkey) ~= "string" or #rkey == 0 or #rkey > 1024) then
    return nil, "option 'rate_key' must be a string of 1 to 1024 bytes", "EINVAL"
  end
  if (rkey ~= nil) ~= ((v.rate_interval or 0) > 0) then
    return nil, "options 'rate_key' and 'rate_interval' (> 0) go together", "EINVAL"
  end
  if uud ~= nil and type(uud) ~= "boolean" then
    return nil, "option 'unique_until_done' must be a boolean", "EINVAL"
  end
  if uud then
    if not ukey or v.once_in then
      return nil, "unique_until_done needs a unique_key (once_in excludes it)", "EINVAL"
    end
    if v.unique_ttl then return nil, "unique_until_done excludes unique_ttl", "EINVAL" end
    unique_ttl = 0 -- held until the job is done or dead
  end

  -- Metadata (in TAIL): a msgpack map of strings, as runq.core writes it.
  -- A producer here does not compress args (every reader accepts plain ones).
  local meta = ""
  if opts.meta ~= nil then
    if type(opts.meta) ~= "table" then
      return nil, "option 'meta' must be a table of strings", "EINVAL"
    end
    local n = 0
    for k, mv in pairs(opts.meta) do
      if type(k) ~= "string" or type(mv) ~= "string" or #k == 0 or #k > 255 then
        return nil, "option 'meta' must map strings (1 to 255 bytes) to strings", "EINVAL"
      end
      n = n + 1
    end
    if n > 0 then
      local perr
      meta, perr = core.pack(opts.meta)
      if not meta then return nil, perr, "EINVAL" end
      if #meta > 65536 then return nil, "metadata exceeds 65536 bytes", "ETOOBIG" end
    end
  end

  local id = core.new_id()
  local tag = "{runq:" .. queue .. "}"
  local keys = {
    tag .. ":jobs",
    tag .. ":scheduled",
    tag .. ":pending",
    tag .. ":marker",
    tag .. ":config",
    tag .. ":ready",
    tag .. ":rkeys",
    tag .. ":rkwait",
    tag .. ":dl",
    tag .. ":uud",
    "runq:queues",
  }
  -- The record but for the times the server fills in (docs/protocol.md,
  -- "Enqueueing from another language").
  ukey, rkey = ukey or "", rkey or ""
  priority = priority or 0
  local uttl = ukey ~= "" and (unique_ttl or DEFAULT_UNIQUE_TTL_MS) or 0
  local rint = rkey ~= "" and v.rate_interval or 0
  local plain = priority == 0 and not v.eta and not v.delay and not v.deadline and not v.ttl and
    ukey == "" and rkey == ""
  local argv = {
    queue,
    format("2|%d|%d|", max_retries or DEFAULT_MAX_RETRIES, priority),
    format("|%d|", v.timeout or 0),
    plain and "0" or "1",
    id,
    format("|%d|%d|%d|%d|%d|%d|%d|%d|", uttl, rint, (ukey ~= "" and uud) and 1 or 0,
           #task, #payload, #ukey, #meta, #rkey) .. task .. payload .. ukey .. meta .. rkey,
  }
  if not plain then
    for _, a in ipairs({ priority, v.eta or 0, v.delay or 0, v.deadline or 0, v.ttl or 0,
                         ukey, unique_ttl or DEFAULT_UNIQUE_TTL_MS, uud and "1" or "0", rkey }) do
      argv[#argv + 1] = a
    end
  end

  local sock, cerr = connect(self)
  if not sock then return nil, cerr, "EIO" end
  local cmd = { "EVALSHA", enqueue_sha, #keys }
  for i = 1, #keys do cmd[#cmd + 1] = keys[i] end
  for i = 1, #argv do cmd[#cmd + 1] = argv[i] end
  local res, rerr = call(self, sock, cmd)
  if res == false and rerr:find("^NOSCRIPT") then
    -- After SCRIPT FLUSH or a restart: EVAL runs and caches it again.
    cmd[1], cmd[2] = "EVAL", enqueue_src
    res, rerr = call(self, sock, cmd)
  end
  if res == nil then
    sock:close()
    return nil, "redis: " .. tostring(rerr), "EIO"
  end
  if res == false then
    release(self, sock)
    return nil, "redis: " .. tostring(rerr), "EIO"
  end

  -- one code per job, or the code alone (the script's reply for a call
  -- whose jobs all got the same number: always so for one job)
  local code = res
  if type(res) == "table" then code = res[1] end
  if type(code) == "string" then
    release(self, sock)
    return nil, "a job with the same unique key exists", "EDUPLICATE", code
  elseif code == -7 then
    release(self, sock)
    return nil, "queue is full", "EFULL"
  elseif code ~= 1 and code ~= 2 then
    release(self, sock)
    return nil, "unexpected reply from enqueue script", "EPROTO"
  end

  if replicate and replicate > 0 then
    local n, werr = call(self, sock, { "WAIT", replicate, v.replicate_timeout or 1000 })
    if n == nil then
      sock:close()
      return nil, "redis: " .. tostring(werr), "EDURABILITY", id
    end
    release(self, sock)
    if n == false or n < replicate then
      return nil, format("written, but %s of %d replicas confirmed", tostring(n), replicate),
             "EDURABILITY", id
    end
    return id
  end
  release(self, sock)
  return id
end

-- The raising twin, for code that prefers errors.
function _M.enqueue_or_error(self, ...)
  local id, err = self:enqueue(...)
  if not id then error(err, 2) end
  return id
end

return _M
