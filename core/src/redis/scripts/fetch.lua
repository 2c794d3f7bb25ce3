-- fetch: one atomic step on one queue: promote due scheduled jobs, recover
-- expired leases, bury corrupt and past-deadline jobs, lease up to N jobs.
-- KEYS[1] scheduled  KEYS[2] pending  KEYS[3] active (score: lease expiry)
-- KEYS[4] dead (score: time of death)  KEYS[5] marker
-- ARGV[1] job key prefix "{runq:Q}:job:" (job keys share the queue's hash
--         tag, so every key touched is in the slot of KEYS[1])
-- ARGV[2] lease ms  ARGV[3] max jobs  ARGV[4] queue name
-- ARGV[5..] one fresh lease token per job that may be leased
-- Returns {now, next_due, n, job fields x n} (16 fields per job, see below);
-- next_due is 0 when nothing is scheduled or leased.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, lease, max, queue = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local BATCH = 1000 -- bound on work per call; the rest is seen on the next one
-- Finish notices ({runq:Q}:done:ID) share the job keys' prefix and slot.
local done_prefix = string.sub(prefix, 1, -5) .. 'done:'

local function load(key)
  local r = redis.pcall('HGETALL', key)
  if type(r) ~= 'table' or r.err then return nil, 'is not a hash' end
  if #r == 0 then return nil, 'is missing' end
  local h = {}
  for i = 1, #r, 2 do h[r[i]] = r[i + 1] end
  return h
end

local NUMERIC = {'attempt', 'maxr', 'prio', 'created', 'eta', 'timeout', 'deadline', 'uttl'}
local function check(h)
  for _, f in ipairs(NUMERIC) do
    if not tonumber(h[f] or '') then return 'field ' .. f .. ' is missing or not a number' end
  end
  if not h.task or h.task == '' then return 'field task is missing' end
  if not h.args or h.args == '' then return 'field args is missing' end
  return nil
end

local function bury(id, key, reason, readable)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  if not readable then
    -- Unreadable record: replace it with a stub that says why, so that it
    -- can still be listed and inspected.
    redis.call('DEL', key)
    redis.call('HSET', key, 'id', id, 'queue', queue, 'task', '', 'attempt', 0, 'maxr', 0,
      'prio', 0, 'created', now, 'eta', now, 'timeout', 0, 'deadline', 0, 'uttl', 0)
  end
  redis.call('HSET', key, 'state', 5, 'error', reason, 'token', '0', 'lease', 0)
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('RPUSH', done_prefix .. id, 'dead')
  redis.call('PEXPIRE', done_prefix .. id, 60000)
end

-- 1. Promote due scheduled jobs.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, BATCH)) do
  local key = prefix .. id
  local prio = redis.pcall('HGET', key, 'prio')
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], -(tonumber(type(prio) == 'string' and prio or '') or 0), id)
  redis.pcall('HSET', key, 'state', 2)
end

-- 2. Recover expired leases: the attempt stays counted.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, BATCH)) do
  local key = prefix .. id
  local h, why = load(key)
  local bad = h and check(h) or (not h and ('the job record ' .. why))
  if bad then
    bury(id, key, 'corrupt job: ' .. bad, h ~= nil)
  elseif h.state ~= '3' then
    -- A lease entry whose job is no longer active (settled): drop the
    -- entry, never re-run the job.
    redis.call('ZREM', KEYS[3], id)
  elseif tonumber(h.attempt) > tonumber(h.maxr) then
    bury(id, key, 'lease expired', true)
  else
    redis.call('ZREM', KEYS[3], id)
    redis.call('HSET', key, 'state', 2, 'error', 'lease expired', 'token', '0', 'lease', 0)
    redis.call('ZADD', KEYS[2], -tonumber(h.prio), id)
  end
end

-- 3. Lease up to max pending jobs: highest priority, then oldest id.
local out = {}
local taken = 0
while taken < max do
  local ids = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #ids == 0 then break end
  local id = ids[1]
  local key = prefix .. id
  local h, why = load(key)
  local bad = h and check(h) or (not h and ('the job record ' .. why))
  if bad then
    bury(id, key, 'corrupt job: ' .. bad, h ~= nil)
  elseif tonumber(h.deadline) > 0 and now > tonumber(h.deadline) then
    bury(id, key, 'deadline passed', true)
  else
    redis.call('ZREM', KEYS[2], id)
    taken = taken + 1
    local attempt = tonumber(h.attempt) + 1
    local token = ARGV[4 + taken]
    local expiry = now + lease
    redis.call('HSET', key, 'state', 3, 'attempt', attempt, 'token', token, 'lease', expiry)
    redis.call('ZADD', KEYS[3], expiry, id)
    local n = #out
    out[n + 1] = id
    out[n + 2] = h.task
    out[n + 3] = h.queue or queue
    out[n + 4] = h.args
    out[n + 5] = attempt
    out[n + 6] = tonumber(h.maxr)
    out[n + 7] = tonumber(h.prio)
    out[n + 8] = tonumber(h.created)
    out[n + 9] = tonumber(h.eta)
    out[n + 10] = tonumber(h.timeout)
    out[n + 11] = tonumber(h.deadline)
    out[n + 12] = h.ukey or ''
    out[n + 13] = tonumber(h.uttl)
    out[n + 14] = h.error or ''
    out[n + 15] = token
    out[n + 16] = expiry
  end
end

-- 4. When the next thing falls due, so that an idle fetch waits just that long.
local next_due = 0
local s = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #s > 0 then next_due = tonumber(s[2]) end
local a = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #a > 0 and (next_due == 0 or tonumber(a[2]) < next_due) then next_due = tonumber(a[2]) end
-- Work left over: wake another blocked fetch at once.
if redis.call('ZCARD', KEYS[2]) > 0 then redis.call('ZADD', KEYS[5], now, 'm') end

local res = {now, next_due, taken}
for i = 1, #out do res[3 + i] = out[i] end
return res
