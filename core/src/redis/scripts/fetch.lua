-- fetch: one atomic step on one queue: promote due scheduled jobs, recover
-- expired leases, bury corrupt and past-deadline jobs, lease up to N jobs.
-- KEYS[1] scheduled  KEYS[2] pending  KEYS[3] active (score: lease expiry)
-- KEYS[4] dead (score: time of death)  KEYS[5] marker
-- ARGV[1] job key prefix "{runq:Q}:job:" (job keys share the queue's hash
--         tag, so every key touched is in the slot of KEYS[1])
-- ARGV[2] lease ms  ARGV[3] max jobs  ARGV[4] queue name
-- ARGV[5..] one fresh lease token per job that may be leased
-- KEYS[6] config hash  KEYS[7] gate state hash (queue gates, see below)
-- KEYS[8] rkeys zset  KEYS[9] rkwait zset  KEYS[10] rkflight hash (rate keys,
--         see below; the per-key zsets {runq:Q}:rk:<key> are built from the
--         prefix like job keys, so they share the slot)
-- Returns {now, next_due, n, job fields x n} (20 fields per job, see below);
-- next_due is 0 when nothing is scheduled or leased.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, lease, max, queue = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local BATCH = 1000 -- bound on work per call; the rest is seen on the next one
local fmt = string.format
-- Integers go to redis.call as strings: a Lua number would be formatted with
-- %.17g and parsed back by Redis.
local now_s = fmt('%d', now)
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

-- Numeric fields every record has, and those enqueue leaves out when they
-- hold their default, 0 (absent reads as 0; present, it must be a number).
local NUMERIC = {'maxr', 'created', 'eta'}
local NUMERIC_DEFAULT_0 = {'attempt', 'prio', 'timeout', 'deadline', 'uttl'}
local function check(h)
  -- Record version: a record without `v` is version 1 (written before the
  -- field existed); a newer version may have fields this reader misreads, so
  -- it is judged first.
  if h.v and h.v ~= '1' then return 'unsupported record version ' .. h.v end
  for _, f in ipairs(NUMERIC) do
    if not tonumber(h[f] or '') then return 'field ' .. f .. ' is missing or not a number' end
  end
  for _, f in ipairs(NUMERIC_DEFAULT_0) do
    if h[f] and not tonumber(h[f]) then return 'field ' .. f .. ' is not a number' end
  end
  if not h.task or h.task == '' then return 'field task is missing' end
  if not h.args or h.args == '' then return 'field args is missing' end
  return nil
end

-- Rate keys (per-key interval limit; docs/redis-backend.md). A ready job
-- with a rate key waits in {runq:Q}:rk:<key> (score -priority) and in rkwait
-- (for counts), not in pending. rkeys scores each key with the time its next
-- job may be promoted into pending, +inf while a promoted job of it is in
-- pending (rkflight: id -> key). Leasing that job re-scores the key at
-- now + interval, so jobs of one key start at least an interval apart, and a
-- waiting key never holds up other keys or unkeyed jobs.
local RKEYS, RKWAIT, RKFLIGHT = KEYS[8], KEYS[9], KEYS[10]
local tag_prefix = string.sub(prefix, 1, -5) -- "{runq:Q}:"
local rk_started = false

-- A job became ready: into pending, or behind its rate key.
-- rk_dirty: RKEYS was written, so step 4 reads its head again.
local rk_dirty = false
local function ready(id, prio, rkey)
  local score = fmt('%d', -prio)
  if rkey and rkey ~= '' then
    redis.call('ZADD', tag_prefix .. 'rk:' .. rkey, score, id)
    redis.call('ZADD', RKWAIT, score, id)
    redis.call('ZADD', RKEYS, 'NX', now_s, rkey)
    rk_dirty = true
  else
    redis.call('ZADD', KEYS[2], score, id)
  end
end

-- A promoted job left pending: leased (its key's next job may be promoted
-- at `at` = now + interval) or dead-lettered unstarted (`at` = now).
local function rk_left(id, at)
  local rkey = redis.call('HGET', RKFLIGHT, id)
  if not rkey then return end
  redis.call('HDEL', RKFLIGHT, id)
  redis.call('ZADD', RKEYS, fmt('%d', at), rkey)
  rk_dirty = true
end

-- Unique-until-done: a job that dies lets its unique key go, if it still
-- holds it (a later holder's key is never touched).
local function unique_release(id, key)
  local u = redis.call('HMGET', key, 'uud', 'ukey')
  if u[1] == '1' and u[2] and u[2] ~= '' then
    local ukey = tag_prefix .. 'unique:' .. u[2]
    if redis.call('GET', ukey) == id then redis.call('DEL', ukey) end
  end
end

-- a_dirty: the active zset lost entries, so step 4 reads its head again.
local a_dirty = false
local function bury(id, key, reason, readable)
  a_dirty = true
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  rk_left(id, now) -- rate key: it never started
  if readable then unique_release(id, key) end
  if not readable then
    -- Unreadable record: replace it with a stub that says why, so that it
    -- can still be listed and inspected.
    redis.call('DEL', key)
    redis.call('HSET', key, 'id', id, 'queue', queue, 'task', '', 'attempt', '0', 'maxr', '0',
      'prio', '0', 'created', now_s, 'eta', now_s, 'timeout', '0', 'deadline', '0', 'uttl', '0')
  end
  redis.call('HSET', key, 'state', '5', 'error', reason, 'token', '0', 'lease', '0')
  redis.call('ZADD', KEYS[4], now_s, id)
  redis.call('RPUSH', done_prefix .. id, 'dead')
  redis.call('PEXPIRE', done_prefix .. id, 60000)
end

-- The head (lowest score) of a zset, or nil; a scan below runs only when its
-- zset's head is due, so an idle queue costs one ZRANGE per zset, not a scan.
local function head(key)
  local h = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #h == 0 then return nil end
  return tonumber(h[2])
end
local s_head, a_head, rk_head = head(KEYS[1]), head(KEYS[3]), head(RKEYS)
local s_scan = s_head ~= nil and s_head <= now
local a_scan = a_head ~= nil and a_head <= now
local rk_scan = rk_head ~= nil and rk_head <= now

-- 1. Promote due scheduled jobs.
for _, id in ipairs(s_scan and redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_s, 'LIMIT', 0, BATCH) or {}) do
  local key = prefix .. id
  local f = redis.pcall('HMGET', key, 'prio', 'rkey')
  local prio, rkey = 0, ''
  if type(f) == 'table' and not f.err then prio, rkey = tonumber(f[1] or '') or 0, f[2] or '' end
  redis.call('ZREM', KEYS[1], id)
  ready(id, prio, rkey)
  redis.pcall('HSET', key, 'state', '2')
end

-- 2. Recover expired leases: the attempt stays counted.
for _, id in ipairs(a_scan and redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_s, 'LIMIT', 0, BATCH) or {}) do
  local key = prefix .. id
  local h, why = load(key)
  local bad = h and check(h) or (not h and ('the job record ' .. why))
  if bad then
    bury(id, key, 'corrupt job: ' .. bad, h ~= nil)
  elseif h.state ~= '3' then
    -- A lease entry whose job is no longer active (settled): drop the
    -- entry, never re-run the job.
    redis.call('ZREM', KEYS[3], id)
  elseif (tonumber(h.attempt) or 0) > tonumber(h.maxr) then
    bury(id, key, 'lease expired', true)
  else
    redis.call('ZREM', KEYS[3], id)
    redis.call('HSET', key, 'state', '2', 'error', 'lease expired', 'token', '0', 'lease', '0')
    ready(id, tonumber(h.prio) or 0, h.rkey)
  end
end

-- 2b. Rate keys whose time has come: promote each one's head job into
-- pending, where it competes by priority; forget keys that waited out their
-- interval with nothing behind them.
if rk_scan then rk_dirty = true end
for _, rkey in ipairs(rk_scan and redis.call('ZRANGEBYSCORE', RKEYS, '-inf', now_s, 'LIMIT', 0, BATCH) or {}) do
  local rk = tag_prefix .. 'rk:' .. rkey
  local head = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', RKEYS, rkey)
  else
    redis.call('ZREM', rk, head[1])
    redis.call('ZREM', RKWAIT, head[1])
    redis.call('ZADD', KEYS[2], head[2], head[1])
    redis.call('ZADD', RKEYS, '+inf', rkey)
    redis.call('HSET', RKFLIGHT, head[1], rkey)
  end
end

-- Queue gates: manual pause, automatic pause (one probe job after the
-- interval), concurrency limit (the active zset is the lease set, expired
-- leases were recovered above), rate limit (GCRA in microseconds, server
-- clock). `allow` bounds how many jobs step 3 may lease; `gate_due` is when a
-- closed gate opens by itself (0: only on a wake-up: resume, ack, fail).
-- Same rules as the gate functions of memory/memory.c.
local GATE_CONFIG, GATE_STATE = KEYS[6], KEYS[7]
local gcfg = redis.call('HMGET', GATE_CONFIG, 'rate_limit', 'rate_period', 'rate_burst', 'climit',
  'pause_after')
local gst = redis.call('HMGET', GATE_STATE, 'paused', 'level', 'until', 'probe', 'tat')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate, climit = tonumber(gcfg[1]) or 0, tonumber(gcfg[4]) or 0
local auto = (tonumber(gcfg[5]) or 0) > 0 and (tonumber(gst[2]) or 0) > 0
local allow, gate_due = max, 0
local emission, tau, tat = 0, 0, 0
if rate > 0 then
  emission = math.ceil((tonumber(gcfg[2]) or 1000) * 1000 / rate)
  -- rate_burst 0 (or absent) is automatic, rate_limit / 20, as in runq.h;
  -- the C client stores it resolved, other writers may not.
  local burst = tonumber(gcfg[3]) or 0
  if burst < 1 then burst = math.max(1, math.floor(rate / 20)) end
  tau = (burst - 1) * emission
  tat = math.max(tonumber(gst[5]) or 0, now_us)
end
local probe = gst[4] or ''
if auto and probe ~= '' and redis.pcall('HGET', prefix .. probe, 'state') ~= '3' then
  probe = '' -- the probe came back without an outcome (lease expired): another may go
end
if gst[1] == '1' then
  allow = 0
else
  if auto then
    local till = tonumber(gst[3]) or 0
    if now < till then
      allow, gate_due = 0, till
    elseif probe ~= '' then
      allow = 0
    else
      allow = 1
    end
  end
  if allow > 0 and climit > 0 then
    allow = math.max(0, math.min(allow, climit - redis.call('ZCARD', KEYS[3])))
  end
  if allow > 0 and rate > 0 then
    allow = math.max(0, math.min(allow, math.floor((now_us + tau - tat) / emission) + 1))
  end
end

-- 3. Lease up to max pending jobs: highest priority, then oldest id.
local out = {}
local taken = 0
local expiry = now + lease
local expiry_s = fmt('%d', expiry)
local cap = math.min(max, allow)
-- ZPOPMIN takes as many as may still be leased in one call; every popped job
-- is either leased or buried below, so none is lost from pending.
while taken < cap do
  local popped = redis.call('ZPOPMIN', KEYS[2], cap - taken)
  if #popped == 0 then break end
  for p = 1, #popped, 2 do
    local id = popped[p]
    local key = prefix .. id
    local h, why = load(key)
    local bad = h and check(h) or (not h and ('the job record ' .. why))
    if bad then
      bury(id, key, 'corrupt job: ' .. bad, h ~= nil)
    elseif (tonumber(h.deadline) or 0) > 0 and now > tonumber(h.deadline) then
      bury(id, key, 'deadline passed', true)
    else
      taken = taken + 1
      local attempt = (tonumber(h.attempt) or 0) + 1
      local token = ARGV[4 + taken]
      redis.call('HSET', key, 'state', '3', 'attempt', fmt('%d', attempt), 'token', token,
        'lease', expiry_s)
      redis.call('ZADD', KEYS[3], expiry_s, id)
      -- rate key: the key's next job may start an interval from now
      if h.rkey and h.rkey ~= '' then
        rk_left(id, now + (tonumber(h.rint) or 0))
        rk_started = true
      end
      -- queue gates: spend a rate token; the first job after an automatic pause is the probe
      if rate > 0 then tat = math.max(tat, now_us) + emission end
      if auto then probe = id end
      local n = #out
      out[n + 1] = id
      out[n + 2] = h.task
      out[n + 3] = h.queue or queue
      out[n + 4] = h.args
      out[n + 5] = attempt
      out[n + 6] = tonumber(h.maxr)
      out[n + 7] = tonumber(h.prio) or 0
      out[n + 8] = tonumber(h.created)
      out[n + 9] = tonumber(h.eta)
      out[n + 10] = tonumber(h.timeout) or 0
      out[n + 11] = tonumber(h.deadline) or 0
      out[n + 12] = h.ukey or ''
      out[n + 13] = tonumber(h.uttl) or 0
      out[n + 14] = h.error or ''
      out[n + 15] = token
      out[n + 16] = expiry
      out[n + 17] = h.meta or ''
      out[n + 18] = h.rkey or ''                       -- rate key ('' none)
      out[n + 19] = tonumber(h.rint or '') or 0        -- rate interval ms
      out[n + 20] = h.uud == '1' and 1 or 0            -- unique until done
    end
  end
end

-- 4. When the next thing falls due, so that an idle fetch waits just that long.
-- The heads read at the start still hold unless a step above wrote the zset:
-- scheduled only loses jobs to promotion; active gains leases at `expiry`.
local next_due = 0
if s_scan then s_head = head(KEYS[1]) end
if a_scan or a_dirty then a_head = head(KEYS[3]) end
if taken > 0 and (a_head == nil or expiry < a_head) then a_head = expiry end
if s_head then next_due = s_head end
if a_head and (next_due == 0 or a_head < next_due) then next_due = a_head end
-- Rate keys: when the next key may promote a job (keys in flight are +inf);
-- after a key was re-scored with jobs behind it, wake a blocked fetch so that
-- it re-computes its wait.
if rk_dirty then
  local rkn = redis.call('ZRANGEBYSCORE', RKEYS, '-inf', '(+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  rk_head = #rkn > 0 and tonumber(rkn[2]) or nil
end
if rk_head and rk_head < math.huge and (next_due == 0 or rk_head < next_due) then
  next_due = rk_head
end
if rk_started and redis.call('ZCARD', RKWAIT) > 0 then redis.call('ZADD', KEYS[5], now_s, 'm') end
-- Queue gates: keep their state; with jobs left and a gate closed, wake when
-- it opens (next rate token, end of the pause) and do not wake other fetches
-- now: they would find the gate closed too.
if taken > 0 and rate > 0 then
  redis.call('HSET', GATE_STATE, 'tat', string.format('%.0f', tat))
end
if taken > 0 and auto then redis.call('HSET', GATE_STATE, 'probe', probe) end
local waiting = redis.call('ZCARD', KEYS[2])
if waiting > 0 and rate > 0 and gst[1] ~= '1' then
  local at = math.ceil((math.max(tat, now_us) - tau) / 1000)
  if at > now and (gate_due == 0 or at > gate_due) then gate_due = at end
end
if waiting > 0 and gate_due > 0 and (next_due == 0 or gate_due < next_due) then
  next_due = gate_due
end
-- Work left over: wake another blocked fetch at once.
if waiting > 0 and allow >= max then redis.call('ZADD', KEYS[5], now_s, 'm') end

local res = {now, next_due, taken}
for i = 1, #out do res[3 + i] = out[i] end
return res
