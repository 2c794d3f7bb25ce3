-- enqueue: store N >= 1 new jobs of one queue, each atomically with its unique
-- key and max_len check (one call per batch: TIME and the config read once;
-- the records and the ready list written with one command each).
-- KEYS[1] jobs hash      {runq:Q}:jobs        (id -> record, docs/protocol.md)
-- KEYS[2] scheduled zset {runq:Q}:scheduled   (score: eta ms)
-- KEYS[3] pending zset   {runq:Q}:pending     (score: -priority; ties by id)
-- KEYS[4] marker zset    {runq:Q}:marker      (wakes blocked fetches)
-- KEYS[5] queue config   {runq:Q}:config
-- KEYS[6] ready list     {runq:Q}:ready       (fresh priority 0 jobs, in order)
-- KEYS[7] {runq:Q}:rkeys  KEYS[8] {runq:Q}:rkwait (every job waiting behind a
-- rate key)  KEYS[9] {runq:Q}:dl (deadlines)  KEYS[10] {runq:Q}:uud (unique
-- until done)  KEYS[11] runq:queues (every queue name, for lookups by id)
-- A job's unique key {runq:Q}:unique:<key> and rate key zset {runq:Q}:rk:<key>
-- are built from the prefix of KEYS[1], in the same slot.
-- ARGV[1] the queue name, ARGV[2] HEAD and ARGV[3] MID of most jobs,
-- ARGV[4] FLAGS, one character per job; then per job, in order:
--   ID TAIL [HEAD MID] [PRIORITY ETA_MS DELAY_MS DEADLINE_MS TTL_MS
--   UNIQUE_KEY UNIQUE_TTL_MS UNIQUE_UNTIL_DONE RATE_KEY]
-- The producer builds the record (docs/protocol.md) but for the three times
-- the server knows: record = HEAD .. created .. '|' .. eta .. MID .. deadline
-- .. TAIL, where HEAD = "2|maxr|prio|", MID = "|timeout|" and TAIL =
-- "|uttl|rint|uud|#task|#args|#ukey|#meta|#rkey|" followed by the five
-- strings. A job's flag '0': the common job (due now, priority 0, no unique
-- key, rate key, deadline or TTL) with the shared HEAD and MID; '1': the 9
-- options follow; '2': the job's own HEAD and MID follow; '3': both, HEAD
-- and MID first. HEAD and MID once per call and the flags in one string
-- leave two strings per plain job to hand to Lua, not five.
-- Returns one field per job, in order: 1 (stored, scheduled) | 2 (stored,
-- ready) | the holder's id (its unique key is held) | -7 (queue full); or,
-- when every job got the same number, that number alone (the common case:
-- no array to build, write and parse).
local fmt = string.format
local now, now_s = now_ms()
local tag = string.match(KEYS[1], '^(.*:)jobs$')
local keys = {pending = KEYS[3], rkeys = KEYS[7], rkwait = KEYS[8]}

local maxlen = tonumber(redis.call('HGET', KEYS[5], 'max_len') or '0') or 0
local waiting = 0
if maxlen > 0 then
  waiting = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) +
    redis.call('LLEN', KEYS[6]) + redis.call('ZCARD', KEYS[8])
end

-- A job with options (ARGV[a..a+8]): its code (1 scheduled, 2 for the
-- ready list, 3 ready elsewhere; or the holder id, or -7), eta and deadline,
-- having written what goes beyond the record and the ready list.
local function store_opts(id, a)
  local prio_s, eta_s, deadline_s, ukey = ARGV[a], ARGV[a + 1], ARGV[a + 3], ARGV[a + 5]
  local kuniq = tag .. 'unique:' .. ukey
  local holder = ukey ~= '' and redis.call('GET', kuniq)
  if holder then return holder end
  if maxlen > 0 and waiting >= maxlen then return -7 end
  local eta = tonumber(eta_s)
  if eta == 0 then
    eta = now + tonumber(ARGV[a + 2])
    eta_s = fmt('%d', eta)
  end
  local deadline, ttl = tonumber(deadline_s), tonumber(ARGV[a + 4])
  if ttl > 0 and (deadline == 0 or now + ttl < deadline) then
    deadline = now + ttl
    deadline_s = fmt('%d', deadline)
  end
  local uud = ARGV[a + 7] == '1'
  if ukey ~= '' then
    local uttl = ARGV[a + 6]
    if tonumber(uttl) > 0 then redis.call('SET', kuniq, id, 'PX', uttl)
    elseif uud then redis.call('SET', kuniq, id) -- held until done or dead
    else
      -- No TTL and not until-done: the 24 h default of runq.h, so that a
      -- producer sending 0 cannot block the key forever.
      redis.call('SET', kuniq, id, 'PX', 86400000)
    end
    if uud then redis.call('HSET', KEYS[10], id, ukey) end
  end
  if deadline > 0 then redis.call('ZADD', KEYS[9], deadline_s, id) end
  if eta > now then
    redis.call('ZADD', KEYS[2], eta_s, id)
    return 1, eta_s, deadline_s
  end
  local rkey = ARGV[a + 8]
  if rkey == '' and prio_s == '0' then return 2, eta_s, deadline_s end
  -- A rate key seen for the first time may promote its first job at once
  -- (NX: a key that waits out its interval, or has a job in flight (+inf),
  -- keeps its time).
  make_ready(tag, keys, id, tonumber(prio_s), rkey, now_s)
  return 3, eta_s, deadline_s
end

-- rn, yn: the lengths of recs and ready (Lua's # searches for the border)
local out, recs, ready, rn, yn = {}, {KEYS[1]}, {KEYS[6]}, 1, 1
local head0, mid0, flags = ARGV[2], ARGV[3], ARGV[4]
local byte = string.byte
-- The record of a plain job up to its TAIL: the same for all of the call.
local plain = head0 .. now_s .. '|' .. now_s .. mid0 .. '0'
local uniform = true -- every job's code is the same
local a = 5
for i = 1, #flags do
  local flag = byte(flags, i) - 48 -- '0'
  local id, tail = ARGV[a], ARGV[a + 1]
  local head, mid = head0, mid0
  a = a + 2
  if flag >= 2 then
    head, mid = ARGV[a], ARGV[a + 1]
    a = a + 2
  end
  local code, eta_s, deadline_s = 2, now_s, '0'
  if flag == 1 or flag == 3 then
    code, eta_s, deadline_s = store_opts(id, a)
    a = a + 9
  elseif maxlen > 0 and waiting >= maxlen then
    code = -7
  end
  if code == 1 or code == 2 or code == 3 then
    waiting = waiting + 1
    recs[rn + 1] = id
    if flag == 0 then
      recs[rn + 2] = plain .. tail
    else
      recs[rn + 2] = head .. now_s .. '|' .. eta_s .. mid .. deadline_s .. tail
    end
    rn = rn + 2
    if code == 2 then
      yn = yn + 1
      ready[yn] = id
    elseif code == 3 then
      code = 2
    end
  end
  out[i] = code
  if code ~= out[1] then uniform = false end
end
if rn > 1 then
  redis.call('HSET', unpack(recs))
  if yn > 1 then redis.call('RPUSH', unpack(ready)) end
  redis.call('SADD', KEYS[11], ARGV[1])
  -- Any change of what is due wakes one blocked fetch, which re-computes its
  -- wait (a newly scheduled job may be due sooner than what it waits for).
  redis.call('ZADD', KEYS[4], now_s, 'm')
end
if uniform and type(out[1]) == 'number' then return out[1] end
return out
