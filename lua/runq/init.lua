-- runq: a distributed task queue (Lua binding).
--
--   local runq = require "runq"
--   local app = assert(runq.new("redis://127.0.0.1:6380/0"))
--   app:task("add", function(args, job) return args[1] + args[2] end)
--   local id = assert(app:enqueue("add", {1, 2}))
--   local w = assert(app:worker{queues = {"default"}})
--   w:run_once(1)
--
-- Every method returns nil, message, code on failure (code is a string such
-- as "EDUPLICATE"). require "runq.strict" gives the same API where failures
-- raise instead. Durations are seconds (fractions allowed); see docs/lua.md.
local core = require "runq.core"

local setmetatable, type, error, select = setmetatable, type, error, select
local pairs, ipairs = pairs, ipairs

local _M = {
  _VERSION = core._VERSION,
  core = core,
  -- A handler returns (or raises) runq.retry(delay) to be retried after
  -- `delay` seconds instead of the task's backoff.
  retry = core.retry,
  is_retry = core.is_retry,
  pack = core.pack,
  unpack = core.unpack,
}

local App = {}
App.__index = App

local Worker = {}
Worker.__index = Worker

-- runq.new(url, opts) -> app | nil, err, code
function _M.new(url, opts)
  local client, err, code = core.open(url or "memory://", opts)
  if not client then
    return nil, err, code
  end
  return setmetatable({ client = client, url = url or "memory://" }, App)
end

function App:backend() return self.client:backend() end

-- app:task(name, handler, opts): register `handler(args, job)` for task
-- `name`. opts: queue, max_retries, backoff_min, backoff_max,
-- backoff_factor, backoff_jitter, timeout, unique_ttl.
function App:task(name, handler, opts)
  if type(name) ~= "string" then
    return nil, "task name must be a string", "EINVAL"
  end
  if handler ~= nil and type(handler) ~= "function" then
    return nil, "handler must be a function", "EINVAL"
  end
  if opts ~= nil and type(opts) ~= "table" then
    return nil, "task options must be a table", "EINVAL"
  end
  return self.client:task(name, handler, opts)
end

-- app:enqueue(name, args, opts) -> id | nil, err, code[, existing_id]
-- args: a table; its array part is positional, its other keys kwargs.
-- opts: queue, delay, eta, priority, max_retries, timeout, ttl, deadline,
-- unique_key, unique_ttl, once_in, replicate, replicate_timeout, meta (a
-- table of string keys and values carried to the worker: job:meta()).
function App:enqueue(name, args, opts)
  if type(name) ~= "string" then
    return nil, "task name must be a string", "EINVAL"
  end
  if args ~= nil and type(args) ~= "table" then
    return nil, "args must be a table (got " .. type(args) .. ")", "EINVAL"
  end
  if opts ~= nil and type(opts) ~= "table" then
    return nil, "enqueue options must be a table", "EINVAL"
  end
  return self.client:enqueue(name, args, opts)
end

-- app:enqueue_many({ {name, args, opts}, ... }) -> ids[, errs, codes] |
-- nil, err, code. One round trip for the whole batch. ids[i] is item i's
-- job id, or false when it was refused: errs[i] and codes[i] then say why
-- (e.g. "EDUPLICATE", "EFULL"); errs and codes are nil when every item was
-- enqueued. A malformed item fails the call (nil, err, "EINVAL") before
-- anything is enqueued. Items take the same args and opts as app:enqueue.
function App:enqueue_many(items)
  if type(items) ~= "table" then
    return nil, "enqueue_many takes a table of {task, args, opts} items", "EINVAL"
  end
  return self.client:enqueue_many(items)
end

-- Hooks: app:on_enqueue(fn(job)) runs before each job is stored and may add
-- metadata with job:set_meta(key, value) (an error refuses the job: enqueue
-- returns nil, err); app:before_process(fn(job)) runs before a handler;
-- app:after_process(fn(job, outcome, err, seconds)) after the job is settled
-- (outcome "acked", "retried", "dead", "released" or "lost"). They run on
-- the thread and state that called enqueue or run_once, in the order added;
-- errors of the process hooks are reported on stderr. -> true | nil, err, code
local function add_hook(self, kind, fn)
  if type(fn) ~= "function" then
    return nil, "a hook must be a function", "EINVAL"
  end
  return self.client:hook(kind, fn)
end
function App:on_enqueue(fn) return add_hook(self, "before_enqueue", fn) end
function App:before_process(fn) return add_hook(self, "before_process", fn) end
function App:after_process(fn) return add_hook(self, "after_process", fn) end

function App:get(id) return self.client:get(id) end
function App:wait(id, timeout) return self.client:wait(id, timeout) end
function App:stats(queue) return self.client:stats(queue) end
function App:dead(queue, cap) return self.client:dead(queue, cap) end
function App:retry_dead(id) return self.client:retry_dead(id) end
function App:configure(queue, opts) return self.client:configure(queue, opts) end
function App:pause(queue) return self.client:pause(queue or "default") end
function App:resume(queue) return self.client:resume(queue or "default") end
function App:close() return self.client:close() end

-- app:schedule{task=..., every=seconds | cron="m h dom mon dow", args=...,
-- queue=...}: enqueue `task` periodically (every: fire times aligned to
-- multiples of it; cron: 5 fields, UTC). Workers this app creates afterwards
-- carry the schedule; however many run, each fire time enqueues one job.
-- -> true | nil, err, code (a bad cron expression is refused here).
function App:schedule(opts)
  if type(opts) ~= "table" then
    return nil, "schedule options must be a table", "EINVAL"
  end
  -- Check it now with a throwaway worker (nothing is fetched or started),
  -- so a bad spec fails here and not at app:worker.
  local probe, err, code = self.client:worker{}
  if not probe then return nil, err, code end
  local ok
  ok, err, code = probe:schedule(opts)
  probe:close()
  if not ok then return nil, err, code end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  self.schedules = self.schedules or {}
  self.schedules[#self.schedules + 1] = copy
  return true
end

-- app:worker{queues=..., weights=..., concurrency=..., lease=..., auto_extend=...}
-- A Lua worker runs handlers on the calling thread (pull mode): concurrency
-- is how many fetched jobs it may hold, not a thread pool, so the C/Python
-- autoscaling options (min/max concurrency) do not apply; run more
-- processes (or OpenResty workers) to scale.
function App:worker(opts)
  if opts ~= nil and type(opts) ~= "table" then
    return nil, "worker options must be a table", "EINVAL"
  end
  local w, err, code = self.client:worker(opts)
  if not w then
    return nil, err, code
  end
  for _, s in ipairs(self.schedules or {}) do
    local ok, serr, scode = w:schedule(s)
    if not ok then
      w:close()
      return nil, serr, scode
    end
  end
  return setmetatable({ w = w, app = self }, Worker)
end

-- worker:run_once(timeout) -> outcome ("done", "failed", "retry", "stale")
-- | false when no job came within `timeout` seconds | nil, err, code.
function Worker:run_once(timeout) return self.w:run_once(timeout) end

-- worker:run{poll=1, max_jobs=nil}: process jobs until worker:stop() (from a
-- handler) or until max_jobs jobs were handled. Returns the count.
function Worker:run(opts)
  local poll = opts and opts.poll or 1
  local max_jobs = opts and opts.max_jobs
  local n = 0
  while not self.w:stopped() do
    local r, err, code = self.w:run_once(poll)
    if r == nil then
      if code == "ECLOSED" then break end
      return nil, err, code
    end
    if r then
      n = n + 1
      if max_jobs and n >= max_jobs then break end
    end
  end
  return n
end

function Worker:stop(grace) return self.w:stop(grace) end
function Worker:stopped() return self.w:stopped() end
function Worker:stats() return self.w:stats() end
function Worker:close() return self.w:close() end

_M.App = App
_M.Worker = Worker

return _M
