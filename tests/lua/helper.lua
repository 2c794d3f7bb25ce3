-- Shared by the specs: which backend to use and fresh, isolated names.
-- RUNQ_TEST_URL selects the backend (memory:// when unset). Against a shared
-- Redis every test uses its own queue and keys, so tests never see each
-- other's jobs.
local M = {}

M.url = os.getenv("RUNQ_TEST_URL") or "memory://"
M.is_redis = M.url:match("^redis://") ~= nil or M.url:match("^unix://") ~= nil

math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local counter = 0

function M.name(prefix)
  counter = counter + 1
  return string.format("%s-%d-%d", prefix or "q", counter, math.random(1, 1e9))
end

-- A new app on the test backend, plus a queue no other test uses.
function M.fresh()
  local runq = require "runq"
  local app = assert(runq.new(M.url))
  return app, M.name("q")
end

-- Long enough that a job that is due is always fetched; run_once returns as
-- soon as one arrives, so this is an upper bound, not a timing assumption.
M.WAIT = 10

return M
