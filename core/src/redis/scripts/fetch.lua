-- fetch: one atomic step on one queue: promote due scheduled jobs, recover
-- expired leases, bury unreadable and past-deadline jobs, lease up to N jobs.
-- KEYS[1] scheduled  KEYS[2] pending (zset, score -priority: priority != 0,
-- and jobs that became ready again)  KEYS[3] active (score: lease expiry)  KEYS[4] dead (score: time
-- of death)  KEYS[5] marker  KEYS[6] config hash  KEYS[7] gate state hash
-- KEYS[8] rkeys  KEYS[9] rkwait  KEYS[10] rkflight (rate keys, see below)
-- KEYS[11] jobs hash  KEYS[12] ready list  KEYS[13] lease hash  KEYS[14] att
-- hash  KEYS[15] dl zset  KEYS[16] uud hash  KEYS[17] waiters hash
-- KEYS[18] lgroups hash (the lease groups, see _record.lua)
-- KEYS[19] rttl (kept results, see _record.lua)
-- ARGV[1] the queue's key prefix "{runq:Q}:" (the per-key zsets rk:<key>,
--         unique:<key> and the finish notices done:<id> are built from it,
--         so they share the slot of KEYS[1])
-- ARGV[2] lease ms  ARGV[3] max jobs  ARGV[4] queue name
-- ARGV[5] a fresh lease token for the jobs this call leases: each lease is
--         the token and the attempt; a job leased again later gets another
--         call's token, so a stale holder's token never matches.
-- Returns {now, next_due, n, lease expiry, job fields x n}: per job id,
-- record, attempt state ("attempt|eta|error" of the previous attempts, or
-- ''; this attempt is one more), or only id and record when none of the
-- jobs taken has an attempt state (the common case: one reply string per
-- job less); next_due is 0 when nothing is scheduled or leased.
local now, now_s, t = now_ms()
local tag, lease, max, queue = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local fmt = string.format
-- Bound on work per call (jobs per step); the rest is seen on the next one.
-- Numbers go to redis.call as strings: Redis formats a Lua number argument
-- with snprintf's %.17g, a few thousand instructions each.
local BATCH_N = 1000
local BATCH = fmt('%d', BATCH_N)
local K = {scheduled = KEYS[1], pending = KEYS[2], active = KEYS[3], dead = KEYS[4],
  rkeys = KEYS[8], rkwait = KEYS[9], jobs = KEYS[11], ready = KEYS[12], lease = KEYS[13],
  att = KEYS[14], dl = KEYS[15], uud = KEYS[16], waiters = KEYS[17], groups = KEYS[18]}
local RKEYS, RKWAIT, RKFLIGHT = KEYS[8], KEYS[9], KEYS[10]

-- Rate keys (per-key interval limit; docs/redis-backend.md). A ready job
-- with a rate key waits in {runq:Q}:rk:<key> (score -priority) and in rkwait
-- (for counts), not in pending. rkeys scores each key with the time its next
-- job may be promoted into pending, +inf while a promoted job of it is in
-- pending (rkflight: id -> key). Leasing that job re-scores the key at
-- now + interval, so jobs of one key start at least an interval apart, and a
-- waiting key never holds up other keys or unkeyed jobs.
-- rk_dirty: RKEYS was written, so step 4 reads its head again.
local rk_dirty, rk_started = false, false
local function ready(id, prio, rkey)
  if make_ready(tag, K, id, prio, rkey, now_s) then rk_dirty = true end
end

-- A promoted job left pending: leased (its key's next job may be promoted
-- at `at` = now + interval) or dead-lettered unstarted (`at` = now). rkey:
-- its rate key when the caller has read it already.
local function rk_left(id, at, rkey)
  rkey = rkey or redis.call('HGET', RKFLIGHT, id)
  if not rkey then return end
  redis.call('HDEL', RKFLIGHT, id)
  redis.call('ZADD', RKEYS, fmt('%d', at), rkey)
  rk_dirty = true
end

-- a_dirty: the active zset lost entries, so step 4 reads its head again.
local a_dirty = false
-- Dead-letter a job taken out of scheduled, pending, ready or active (its
-- lease, if it had one, is gone already).
local function bury(id, attempt, reason)
  rk_left(id, now) -- rate key: it never started
  to_dead(tag, K, id, attempt, '0', reason, now_s)
end

-- The head (lowest score) of a zset, or nil; a scan below runs only when its
-- zset's head is due, so an idle queue costs one ZRANGE per zset, not a scan.
-- +inf is no head: active's LEASE_PAD, a rate key in flight.
local function head(key)
  local h = redis.call('ZRANGE', key, '0', '0', 'WITHSCORES')
  local s = #h > 0 and tonumber(h[2])
  if not s or s == math.huge then return nil end
  return s
end
local s_head, a_head, rk_head = head(KEYS[1]), head(KEYS[3]), head(RKEYS)
local s_scan = s_head ~= nil and s_head <= now
local a_scan = a_head ~= nil and a_head <= now
local rk_scan = rk_head ~= nil and rk_head <= now

-- 1. Promote due scheduled jobs.
local due = s_scan and redis.call('ZRANGEBYSCORE', K.scheduled, '-inf', now_s, 'LIMIT', '0', BATCH)
  or {}
if #due > 0 then
  redis.call('ZREM', K.scheduled, unpack(due))
  local recs = redis.call('HMGET', K.jobs, unpack(due))
  for i, id in ipairs(due) do
    local h, why = rec_parse(recs[i])
    if h then
      ready(id, h.prio, h.rkey)
    else
      bury(id, att_parse(redis.call('HGET', K.att, id)), 'corrupt job: ' .. why)
    end
  end
end

-- 2. Recover expired leases: the attempt stays counted. An expired entry is
-- a fetch call's group ("@token": its jobs still leased under that token,
-- not since given their own entry by extend) or one job's own lease.
local function recover(id, lv)
  redis.call('HDEL', K.lease, id)
  local h, why = rec_parse(redis.call('HGET', K.jobs, id))
  local attempt = lease_attempt(lv)
  if not h then
    bury(id, attempt, 'corrupt job: ' .. why)
  elseif attempt > h.maxr then
    bury(id, attempt, 'lease expired')
  else
    local _, eta = att_parse(redis.call('HGET', K.att, id))
    redis.call('HSET', K.att, id, att_build(attempt, eta, 'lease expired'))
    ready(id, h.prio, h.rkey)
  end
end
-- A group is taken whole; once BATCH_N jobs were looked at, the remaining
-- entries wait for the next call.
local expired = a_scan and
  redis.call('ZRANGEBYSCORE', K.active, '-inf', now_s, 'LIMIT', '0', BATCH) or {}
local looked = 0
for _, m in ipairs(expired) do
  if looked >= BATCH_N then break end
  a_dirty = true
  redis.call('ZREM', K.active, m)
  if string.byte(m, 1) == 64 then -- '@'
    local token = string.sub(m, 2)
    local list = redis.call('HGET', K.groups, token) or ''
    redis.call('HDEL', K.groups, token, '#' .. token)
    local gids = {}
    looked = looked + ids_append(gids, 0, list, 1)
    local lvs = #gids > 0 and redis.call('HMGET', K.lease, unpack(gids)) or {}
    for j, id in ipairs(gids) do
      local lv = lvs[j]
      if lv and not lease_own(lv) and lease_token_ok(lv, token) then recover(id, lv) end
    end
  else
    -- A job's own entry. Without a lease the job was settled: never re-run
    -- it. A lease without the own mark is another group's (the entry is a
    -- leftover) unless that group is gone too.
    looked = looked + 1
    local lv = redis.call('HGET', K.lease, m)
    if lv and (lease_own(lv) or not redis.call('ZSCORE', K.active, '@' .. lease_token(lv))) then
      recover(m, lv)
    end
  end
end
if a_dirty then lease_pad_check(K.active, K.lease, K.groups) end

-- 2b. Rate keys whose time has come: promote each one's head job into
-- pending, where it competes by priority; forget keys that waited out their
-- interval with nothing behind them.
if rk_scan then rk_dirty = true end
for _, rkey in ipairs(rk_scan and redis.call('ZRANGEBYSCORE', RKEYS, '-inf', now_s, 'LIMIT', '0', BATCH) or {}) do
  local rk = tag .. 'rk:' .. rkey
  local first = redis.call('ZRANGE', rk, '0', '0', 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', RKEYS, rkey)
  else
    redis.call('ZREM', rk, first[1])
    redis.call('ZREM', RKWAIT, first[1])
    redis.call('ZADD', K.pending, first[2], first[1])
    redis.call('ZADD', RKEYS, '+inf', rkey)
    redis.call('HSET', RKFLIGHT, first[1], rkey)
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
if auto and probe ~= '' and redis.call('HEXISTS', K.lease, probe) == 0 then
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
    allow = math.max(0, math.min(allow, climit - lease_count(K.lease)))
  end
  if allow > 0 and rate > 0 then
    allow = math.max(0, math.min(allow, math.floor((now_us + tau - tat) / emission) + 1))
  end
end

-- 3. Lease up to `cap` jobs: positive priorities (pending, score < 0), then
-- priority 0 oldest id first, then negative priorities. Priority 0 jobs wait
-- in the ready list (fresh ones, in enqueue order) or in pending with score
-- 0 (jobs that became ready again: retries, recovered and released jobs,
-- promoted rate key jobs), so the two are merged by id. Every job taken out
-- is either leased or buried below, so none is lost.
local cap = math.min(max, allow)
local ids, zsrc = {}, {} -- zsrc[i]: ids[i] came from pending (may hold a rate key)
local function from_pending(list)
  for _, id in ipairs(list) do
    ids[#ids + 1] = id
    zsrc[#ids] = true
  end
end
local p_head = cap > 0 and head(K.pending)
if p_head and p_head < 0 then
  local got = redis.call('ZRANGEBYSCORE', K.pending, '-inf', '(0', 'LIMIT', '0', fmt('%d', cap))
  if #got > 0 then redis.call('ZREM', K.pending, unpack(got)) end
  from_pending(got)
end
local zero = (p_head and cap > #ids) and
  redis.call('ZRANGEBYSCORE', K.pending, '0', '0', 'LIMIT', '0', fmt('%d', cap - #ids)) or {}
-- ready_left: ready may hold jobs after this step (false: LPOP emptied it)
local ready_left = true
if #zero == 0 then
  local want = cap - #ids
  local got = want > 0 and redis.call('LPOP', K.ready, fmt('%d', want))
  if got and #ids == 0 then
    ids = got -- the common case: no copy
  elseif got then
    local n = #ids
    for j = 1, #got do ids[n + j] = got[j] end
  end
  if want > 0 and (not got or #got < want) then ready_left = false end
else
  local list = redis.call('LRANGE', K.ready, '0', fmt('%d', cap - #ids - 1))
  local li, zi, ztaken = 1, 1, {}
  while #ids < cap and (li <= #list or zi <= #zero) do
    if zi > #zero or (li <= #list and list[li] < zero[zi]) then
      ids[#ids + 1] = list[li]
      li = li + 1
    else
      ztaken[#ztaken + 1] = zero[zi]
      from_pending({zero[zi]})
      zi = zi + 1
    end
  end
  if li > 1 then redis.call('LTRIM', K.ready, fmt('%d', li - 1), '-1') end
  if #ztaken > 0 then redis.call('ZREM', K.pending, unpack(ztaken)) end
end
if p_head and cap > #ids then
  local popped = redis.call('ZPOPMIN', K.pending, fmt('%d', cap - #ids))
  local got = {}
  for p = 1, #popped, 2 do got[#got + 1] = popped[p] end
  from_pending(got)
end

local expiry = now + lease
local expiry_s = fmt('%d', expiry)
-- The reply, built in place: the first three fields are set at the end.
local out, on, taken = {now, 0, 0, expiry}, 4, 0
if #ids > 0 then
  local recs = redis.call('HMGET', K.jobs, unpack(ids))
  -- att and dl exist only while some job of the queue has an attempt state
  -- (retried, recovered, dead) or a deadline, rkflight while a rate key's
  -- job is in pending: one EXISTS answers for the three in the common case.
  local any = redis.call('EXISTS', K.att, K.dl, RKFLIGHT) > 0
  local atts = any and redis.call('EXISTS', K.att) == 1 and redis.call('HMGET', K.att, unpack(ids))
    or {}
  local dls = any and redis.call('EXISTS', K.dl) == 1 and redis.call('ZMSCORE', K.dl, unpack(ids))
    or {}
  local lset, ln, group = {K.lease, LEASE_PAD, ''}, 3, {}
  -- Jobs from pending may be promoted rate-key jobs; without any in flight
  -- (the common case, retries and priorities included) none is looked up.
  local rk_inflight = any and redis.call('EXISTS', RKFLIGHT) == 1
  -- w: reply fields per job (3 when some job taken has an attempt state)
  local w = 2
  for i = 1, #atts do
    if atts[i] then
      w = 3
      break
    end
  end
  -- A first attempt's lease is a constant string; a number concatenated
  -- would go through %.14g.
  local token = ARGV[5]
  local first = token .. '|1'
  local byte = string.byte
  for i = 1, #ids do
    local id = ids[i]
    local rec, att, attempt = recs[i], atts[i], 0
    if att then attempt = att_parse(att) end
    -- The version is judged here; the client reads the rest and buries a
    -- record it cannot decode (fail.lua with the bury flag). byte makes no
    -- new string: "2|" is 50, 124.
    local v, bar
    if rec then v, bar = byte(rec, 1, 2) end
    if v ~= 50 or bar ~= 124 then
      local _, why = rec_parse(rec)
      bury(id, attempt, 'corrupt job: ' .. why)
    elseif dls[i] and tonumber(dls[i]) < now then
      bury(id, attempt, 'deadline passed')
    else
      taken = taken + 1
      attempt = attempt + 1
      group[taken] = id
      lset[ln + 1], lset[ln + 2] = id, attempt == 1 and first or fmt('%s|%d', token, attempt)
      ln = ln + 2
      -- rate key: the key's next job may start an interval from now
      if zsrc[i] and rk_inflight then
        local rkey = redis.call('HGET', RKFLIGHT, id)
        if rkey then
          local h = rec_parse(rec)
          rk_left(id, now + (h and h.rint or 0), rkey)
          rk_started = true
        end
      end
      -- queue gates: spend a rate token; the first job after an automatic pause is the probe
      if rate > 0 then tat = math.max(tat, now_us) + emission end
      if auto then probe = id end
      out[on + 1], out[on + 2] = id, rec
      if w == 3 then out[on + 3] = att or '' end
      on = on + w
    end
  end
  if taken > 0 then
    redis.call('HSET', unpack(lset))
    redis.call('HSET', K.groups, LEASE_PAD, '', token, table.concat(group), '#' .. token,
      fmt('%d', taken))
    redis.call('ZADD', K.active, '+inf', LEASE_PAD, expiry_s, '@' .. token)
  end
end

-- 3b. A fetch that leased nothing sweeps expired kept results: on a queue
-- that stopped taking jobs no ack does. Their expiry is one more due time
-- for its wait, a second late (RESULT_LAG_MS) so that results expiring one
-- after another are swept in batches, not one wake-up each; get.lua hides a
-- result past its time meanwhile. A full batch may leave more due: come back
-- at once.
local RESULT_LAG_MS = 1000
local r_due = nil
if taken == 0 then
  local swept, at = results_sweep(tag, K.jobs, KEYS[19], now, BATCH_N)
  if swept >= BATCH_N then r_due = now elseif at then r_due = at + RESULT_LAG_MS end
end

-- 4. When the next thing falls due, so that an idle fetch waits just that long.
-- The heads read at the start still hold unless a step above wrote the zset:
-- scheduled only loses jobs to promotion; active gains leases at `expiry`.
local next_due = 0
if s_scan then s_head = head(K.scheduled) end
if a_scan or a_dirty then a_head = head(K.active) end
if taken > 0 and (a_head == nil or expiry < a_head) then a_head = expiry end
if s_head then next_due = s_head end
if a_head and (next_due == 0 or a_head < next_due) then next_due = a_head end
if r_due and (next_due == 0 or r_due < next_due) then next_due = r_due end
-- Rate keys: when the next key may promote a job (keys in flight are +inf);
-- after a key was re-scored with jobs behind it, wake a blocked fetch so that
-- it re-computes its wait.
if rk_dirty then
  local rkn = redis.call('ZRANGEBYSCORE', RKEYS, '-inf', '(+inf', 'WITHSCORES', 'LIMIT', '0', '1')
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
-- Jobs left: pending gains none after step 3, so a pending found empty
-- there (p_head nil, not false) is still empty.
local waiting = (p_head == nil and 0 or redis.call('ZCARD', K.pending)) +
  (ready_left and redis.call('LLEN', K.ready) or 0)
if waiting > 0 and rate > 0 and gst[1] ~= '1' then
  local at = math.ceil((math.max(tat, now_us) - tau) / 1000)
  if at > now and (gate_due == 0 or at > gate_due) then gate_due = at end
end
if waiting > 0 and gate_due > 0 and (next_due == 0 or gate_due < next_due) then
  next_due = gate_due
end
-- Work left over: wake another blocked fetch at once.
if waiting > 0 and allow >= max then redis.call('ZADD', KEYS[5], now_s, 'm') end

out[2], out[3] = next_due, taken
return out
