-- Shared by every script: cmake/embed_scripts.cmake puts each file named
-- _*.lua in front of every other script, so these helpers exist once.
-- The job record, version 2 (docs/protocol.md, "The job record"): one string
--   2|maxr|prio|created|eta|timeout|deadline|uttl|rint|uud|#task|#args|#ukey|#meta|#rkey|
-- followed by task, args, ukey, meta and rkey, back to back (# = byte length).
-- Plain concatenation: hot paths store and return it without decoding it,
-- and it is cheaper to build here than a msgpack map. The arguments are
-- strings; the lengths go through one string.format with %d, because Lua
-- turns a number into a string with %.14g, which cost more than all the
-- rest of the record (enqueue's largest per-job cost before).
local function rec_build(maxr, prio, created, eta, timeout, deadline, uttl, rint, uud, task, args,
                         ukey, meta, rkey)
  return '2|' .. maxr .. '|' .. prio .. '|' .. created .. '|' .. eta .. '|' .. timeout .. '|' ..
    deadline .. '|' .. uttl .. '|' .. rint .. '|' .. uud ..
    string.format('|%d|%d|%d|%d|%d|', #task, #args, #ukey, #meta, #rkey) ..
    task .. args .. ukey .. meta .. rkey
end

local REC_PAT = '^2|(%d+)|(%-?%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([01])|' ..
  '(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|()'

-- The record as a table, or nil and why it cannot be read.
local function rec_parse(r)
  if type(r) ~= 'string' then return nil, 'the job record is missing' end
  local v = string.match(r, '^(%d+)|')
  if v ~= '2' then
    return nil, v and ('unsupported record version ' .. v) or 'the job record is malformed'
  end
  local maxr, prio, created, eta, timeout, deadline, uttl, rint, uud, lt, la, lu, lm, lr, p =
    string.match(r, REC_PAT)
  if not p then return nil, 'the job record is malformed' end
  lt, la, lu, lm, lr = tonumber(lt), tonumber(la), tonumber(lu), tonumber(lm), tonumber(lr)
  if p + lt + la + lu + lm + lr - 1 ~= #r then return nil, 'the job record is malformed' end
  local h = {maxr = tonumber(maxr), prio = tonumber(prio), created = created, eta = eta,
    timeout = timeout, deadline = tonumber(deadline), uttl = uttl, rint = tonumber(rint),
    uud = uud == '1'}
  h.task = string.sub(r, p, p + lt - 1)
  p = p + lt
  h.args = string.sub(r, p, p + la - 1)
  p = p + la
  h.ukey = string.sub(r, p, p + lu - 1)
  p = p + lu
  h.meta = string.sub(r, p, p + lm - 1)
  h.rkey = string.sub(r, p + lm, p + lm + lr - 1)
  return h
end

-- Server time in ms, as a number and as the decimal string handed to
-- redis.call (a Lua number would be formatted with %.17g and parsed back).
local function now_ms()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return now, string.format('%d', now), t
end

-- The attempt state of a job that is not leased ({runq:Q}:att, absent: none
-- yet): "attempt|eta|error", the attempts made, the eta of a retry (0: the
-- record's) and the last attempt's error.
local function att_build(attempt, eta, err)
  return table.concat({attempt, eta, err or ''}, '|')
end
local function att_parse(s)
  if type(s) ~= 'string' then return 0, '0', '' end
  local a, e, p = string.match(s, '^(%d+)|(%d+)|()')
  if not a then return 0, '0', '' end
  return tonumber(a), e, string.sub(s, p)
end

-- Leases: {runq:Q}:lease (hash, id -> "token|attempt", and "token|attempt|x"
-- once the job has an expiry of its own) and {runq:Q}:active (zset, score:
-- lease expiry). A fetch call leases its jobs under one token and gives them
-- one entry in active, "@token", whose ids are in {runq:Q}:lgroups (field
-- token: the ids back to back, 26 characters each; field "#token": how many
-- of them are still leased under the group's expiry). A per-job ZADD and
-- ZREM of active were a sixth of what fetch and ack cost per job; a group
-- costs one of each per fetch call. extend of one job gives it its own entry
-- (member: its id) and takes it out of its group's count, so every other job
-- of the group still expires with the group; extend of a group (the keeper,
-- which holds all of a call's unsettled jobs) moves the group's entry.
--
-- Redis keeps a small zset or hash as a listpack, which every lookup and
-- insert scans whole, and a busy queue holds 50 to 500 leases (and as many
-- groups when each fetch takes few jobs). LEASE_PAD, an entry longer than
-- the listpack limit (64 bytes by default), goes into active, lease and
-- lgroups with the first lease, so they use hash tables from the start. It
-- is no job id (those have 26 characters), never due (+inf in active), not
-- counted, and leaves with the last lease.
local LEASE_PAD = '~runq~lease~pad~' .. string.rep('~', 64)

-- The lease has an active entry of its own (extend gave it one): 120 is 'x'.
local function lease_own(lv)
  return string.byte(lv, -1) == 120
end

-- k jobs of the group `token` are no longer leased under it; the group goes
-- with its last one.
local function lease_group_leave(active, groups, token, k)
  local c = '#' .. token
  if redis.call('HINCRBY', groups, c, -k) <= 0 then
    redis.call('HDEL', groups, token, c)
    redis.call('ZREM', active, '@' .. token)
  end
end

-- Once no job is leased, the pads go. Only the pads: a lease entry whose
-- active entry was lost (extend gives it a new one) must stay.
local function lease_pad_check(active, lease, groups)
  if redis.call('ZCARD', active) == 1 and redis.call('ZSCORE', active, LEASE_PAD) then
    redis.call('ZREM', active, LEASE_PAD)
    redis.call('HDEL', lease, LEASE_PAD)
    redis.call('HDEL', groups, LEASE_PAD)
  end
end

-- End the leases of ids (a table, at least one): own holds those of them
-- with an active entry of their own, gcnt[g] how many of the others were
-- leased under the token gtok[g] (callers that settle many jobs count them
-- in the loop that checks their leases).
local function lease_end(active, lease, groups, ids, own, gtok, gcnt)
  redis.call('HDEL', lease, unpack(ids))
  if #own > 0 then redis.call('ZREM', active, unpack(own)) end
  for g = 1, #gtok do lease_group_leave(active, groups, gtok[g], gcnt[g]) end
  lease_pad_check(active, lease, groups)
end

-- End the lease lv (under token) of one job.
local function lease_end_one(active, lease, groups, id, lv, token)
  if lease_own(lv) then
    lease_end(active, lease, groups, {id}, {id}, {}, {})
  else
    lease_end(active, lease, groups, {id}, {}, {token}, {1})
  end
end

-- How many jobs are leased (the pad is no lease).
local function lease_count(lease)
  return redis.call('HLEN', lease) - redis.call('HEXISTS', lease, LEASE_PAD)
end

-- A lease ({runq:Q}:lease): "token|attempt[|x]".
local function lease_token_ok(lv, token)
  -- find and byte make no new strings (ack runs this for every job)
  return type(lv) == 'string' and string.byte(lv, #token + 1) == 124 and
    string.find(lv, token, 1, true) == 1
end
local function lease_token(lv)
  return string.match(lv, '^(%d+)|')
end
local function lease_attempt(lv)
  return tonumber(string.match(lv, '^%d+|(%d+)')) or 1
end

-- A job that became ready again (a due retry or delayed job, a recovered,
-- released or dead-retried one) goes to the pending zset (score -priority,
-- ties by id, so a retry keeps its place among priority 0 jobs: fetch merges
-- them with the ready list by id), or behind its rate key. Fresh priority 0
-- jobs go to the ready list (enqueue.lua). Returns true when the rate key
-- schedule was written.
local function make_ready(tag, keys, id, prio, rkey, now_s)
  local score = string.format('%d', -prio)
  if rkey and rkey ~= '' then
    redis.call('ZADD', tag .. 'rk:' .. rkey, score, id)
    redis.call('ZADD', keys.rkwait, score, id)
    redis.call('ZADD', keys.rkeys, 'NX', now_s, rkey)
    return true
  end
  redis.call('ZADD', keys.pending, score, id)
  return false
end

-- Append the job ids written back to back in s from position p on (26
-- characters each: lease groups, kept results) to out[k+1..]; returns the
-- new count.
local function ids_append(out, k, s, p)
  for q = p, #s - 25, 26 do
    k = k + 1
    out[k] = string.sub(s, q, q + 25)
  end
  return k
end

-- Kept results: a done job whose result is kept stays in {runq:Q}:jobs, its
-- record replaced by "4|expiry|finished|attempt|#result|#att|" result att
-- record (the leading version tells the two apart; get.lua hands it out
-- without the expiry; expiry in ms). The jobs one ack call keeps with one
-- TTL expire together: "expiry|" and their ids back to back (26 characters
-- each) are one entry at the tail of {runq:Q}:rexp:<ttl>, a list per TTL,
-- so each list is in expiry order; {runq:Q}:rttl is the set of those TTLs.
-- Nothing expires by itself: ack and an idle fetch sweep the heads that are
-- due, a bounded number per call, and get.lua treats a result past its time
-- as gone. Per job that is 26 bytes of a list entry, where a key with an
-- expiry of its own, or a zset entry, cost 90 or more, and no allocation.

-- Sweep the due results of up to about max jobs (whole entries); returns
-- how many went, and the earliest expiry left when it is known (nil: none
-- left, or the sweep reached max).
local function results_sweep(tag, jobs, rttl, now, max)
  local swept, next_at = 0, nil
  for _, ttl in ipairs(redis.call('SMEMBERS', rttl)) do
    local list = tag .. 'rexp:' .. ttl
    -- Read the head in growing chunks: most calls find one or two due.
    local chunk, stop = 2, false
    while not stop and swept < max do
      local heads = redis.call('LRANGE', list, '0', string.format('%d', chunk - 1))
      local ids, k, taken = {}, 0, 0
      for _, e in ipairs(heads) do
        local bar = string.find(e, '|', 1, true)
        local at = tonumber(string.sub(e, 1, bar - 1))
        if at > now then
          if not next_at or at < next_at then next_at = at end
          stop = true
          break
        end
        k = ids_append(ids, k, e, bar + 1)
        taken = taken + 1
        if swept + k >= max then break end
      end
      if taken > 0 then
        redis.call('LTRIM', list, string.format('%d', taken), '-1')
        if k > 0 then redis.call('HDEL', jobs, unpack(ids)) end
        swept = swept + k
      end
      if not stop and taken == #heads and #heads < chunk then
        -- the list went with its last entry; so goes its TTL
        stop = true
        redis.call('SREM', rttl, ttl)
      end
      chunk = chunk * 2
    end
    if swept >= max then return swept, nil end
  end
  return swept, next_at
end

-- Tell runq_job_wait callers that these jobs finished: only jobs someone
-- registered a wait for ({runq:Q}:waiters, written by get.lua) get a
-- notice list, so an unwatched job costs one EXISTS per call.
local function notify(tag, waiters, ids, what)
  if #ids == 0 or redis.call('EXISTS', waiters) == 0 then return end
  local w = redis.call('HMGET', waiters, unpack(ids))
  for i = 1, #ids do
    if w[i] then
      local k = tag .. 'done:' .. ids[i]
      redis.call('RPUSH', k, what)
      redis.call('PEXPIRE', k, '60000')
      redis.call('HDEL', waiters, ids[i])
    end
  end
end

-- Unique-until-done: jobs that finish let their unique keys go, if they still
-- hold them ({runq:Q}:uud: id -> unique key, for such jobs only).
local function unique_release(tag, uud, ids)
  if #ids == 0 or redis.call('EXISTS', uud) == 0 then return end
  local u = redis.call('HMGET', uud, unpack(ids))
  for i = 1, #ids do
    if u[i] then
      local k = tag .. 'unique:' .. u[i]
      if redis.call('GET', k) == ids[i] then redis.call('DEL', k) end
      redis.call('HDEL', uud, ids[i])
    end
  end
end

-- Dead-letter one job that is no longer in scheduled, pending, ready or
-- active: its attempt state carries the reason, the dead zset the time.
-- A missing record is replaced by an empty one, so that the job can still be
-- listed and inspected; an unreadable one is kept as it is.
local function to_dead(tag, keys, id, attempt, eta, reason, now_s)
  if redis.call('HEXISTS', keys.jobs, id) == 0 then
    redis.call('HSET', keys.jobs, id,
      rec_build('0', '0', now_s, now_s, '0', '0', '0', '0', '0', '', '', '', '', ''))
  end
  unique_release(tag, keys.uud, {id})
  redis.call('HSET', keys.att, id, att_build(attempt, eta, reason))
  redis.call('ZADD', keys.dead, now_s, id)
  notify(tag, keys.waiters, {id}, 'dead')
end
