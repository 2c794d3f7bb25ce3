-- enqueue: store N >= 1 new jobs of one queue, each atomically with its unique
-- key and max_len check (one call per batch: TIME and the config read once;
-- the records and the ready list written with one command each).
-- KEYS[1] jobs hash      {runq:Q}:jobs        (id -> record, docs/protocol.md)
-- KEYS[2] scheduled zset {runq:Q}:scheduled   (score: eta ms)
-- KEYS[3] pending zset   {runq:Q}:pending     (score: -priority; ties by id)
-- KEYS[4] marker zset    {runq:Q}:marker      (wakes blocked fetches)
-- KEYS[5] queue config   {runq:Q}:config
-- KEYS[6] unique key     {runq:Q}:unique:KEY  (unused when the unique key is '')
-- KEYS[7] ready list     {runq:Q}:ready       (fresh priority 0 jobs, in order)
-- KEYS[8] {runq:Q}:rk:KEY (the rate key's waiting jobs)  KEYS[9] {runq:Q}:rkeys
-- KEYS[10] {runq:Q}:rkwait (every job waiting behind a rate key)
-- KEYS[11] {runq:Q}:dl (deadlines)  KEYS[12] {runq:Q}:uud (unique until done)
-- KEYS[13] runq:queues (every queue name, for lookups by id)
-- Jobs 2..N (same queue) follow: 2 KEYS each at KEYS[14 + 2(i-2)]: unique
-- key, rk:KEY.
-- ARGV, 17 per job, job i at ARGV[17(i-1) + 1]: id task queue args
--   max_retries priority eta_ms delay_ms timeout_ms deadline_ms ttl_ms
--   unique_key unique_ttl_ms meta rate_key rate_interval_ms unique_until_done
-- (meta: msgpack map of str -> str or ''; the last three may be absent in a
-- single-job call: none). N = #ARGV / 17.
-- Returns 6 fields per job, in order:
--   0, id, created, eta, deadline, state | -6, holder_id, 0, 0, 0, 0 | -7, '', 0, 0, 0, 0
local fmt = string.format
local now, now_s = now_ms()
local n = math.max(1, math.floor(#ARGV / 17))
local tag = string.match(KEYS[1], '^(.*:)jobs$')
local keys = {pending = KEYS[3], rkeys = KEYS[9], rkwait = KEYS[10]}

local maxlen = tonumber(redis.call('HGET', KEYS[5], 'max_len') or '0') or 0
local waiting = 0
if maxlen > 0 then
  waiting = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) +
    redis.call('LLEN', KEYS[7]) + redis.call('ZCARD', KEYS[10])
end

local out, recs, ready = {}, {KEYS[1]}, {KEYS[7]}
for i = 1, n do
  local a, r = 17 * (i - 1), 6 * (i - 1)
  local kuniq, krk = KEYS[6], KEYS[8]
  if i > 1 then kuniq, krk = KEYS[14 + 2 * (i - 2)], KEYS[15 + 2 * (i - 2)] end
  local id, ukey = ARGV[a + 1], ARGV[a + 12]
  local holder = ukey ~= '' and redis.call('GET', kuniq)
  if holder then
    out[r + 1], out[r + 2], out[r + 3], out[r + 4], out[r + 5], out[r + 6] = -6, holder, 0, 0, 0, 0
  elseif maxlen > 0 and waiting >= maxlen then
    out[r + 1], out[r + 2], out[r + 3], out[r + 4], out[r + 5], out[r + 6] = -7, '', 0, 0, 0, 0
  else
    waiting = waiting + 1
    local eta_s = ARGV[a + 7]
    local eta = tonumber(eta_s)
    if eta == 0 and ARGV[a + 8] == '0' then
      eta, eta_s = now, now_s -- the common case: due at once
    elseif eta == 0 then
      eta = now + tonumber(ARGV[a + 8])
      eta_s = fmt('%d', eta)
    end
    local deadline_s = ARGV[a + 10]
    local deadline = tonumber(deadline_s)
    local ttl = tonumber(ARGV[a + 11])
    if ttl > 0 and (deadline == 0 or now + ttl < deadline) then
      deadline = now + ttl
      deadline_s = fmt('%d', deadline)
    end
    local uud = ARGV[a + 17] == '1'
    local uttl = ARGV[a + 13]
    if ukey ~= '' then
      if tonumber(uttl) > 0 then redis.call('SET', kuniq, id, 'PX', uttl)
      elseif uud then redis.call('SET', kuniq, id) -- held until done or dead
      else
        -- No TTL and not until-done: the 24 h default of runq.h, so that a
        -- producer sending 0 cannot block the key forever.
        redis.call('SET', kuniq, id, 'PX', 86400000)
      end
      if uud then redis.call('HSET', KEYS[12], id, ukey) end
    else
      uttl = '0'
    end
    local prio_s, rkey = ARGV[a + 6], ARGV[a + 15] or ''
    local rint = rkey ~= '' and (ARGV[a + 16] or '0') or '0'
    recs[#recs + 1] = id
    recs[#recs + 1] = rec_build(ARGV[a + 5], prio_s, now_s, eta_s, ARGV[a + 9], deadline_s, uttl,
      rint, uud and ukey ~= '' and '1' or '0', ARGV[a + 2], ARGV[a + 4], ukey, ARGV[a + 14] or '',
      rkey)
    if deadline > 0 then redis.call('ZADD', KEYS[11], deadline_s, id) end
    local state = eta > now and 1 or 2
    if state == 1 then
      redis.call('ZADD', KEYS[2], eta_s, id)
    elseif rkey == '' and prio_s == '0' then
      ready[#ready + 1] = id
    else
      -- A rate key seen for the first time may promote its first job at
      -- once (NX: a key that waits out its interval, or has a job in flight
      -- (+inf), keeps its time).
      make_ready(tag, keys, id, tonumber(prio_s), rkey, now_s)
    end
    out[r + 1], out[r + 2], out[r + 3], out[r + 4], out[r + 5], out[r + 6] =
      0, id, now, eta, deadline, state
  end
end
if #recs > 1 then
  redis.call('HSET', unpack(recs))
  if #ready > 1 then redis.call('RPUSH', unpack(ready)) end
  redis.call('SADD', KEYS[13], ARGV[3])
  -- Any change of what is due wakes one blocked fetch, which re-computes its
  -- wait (a newly scheduled job may be due sooner than what it waits for).
  redis.call('ZADD', KEYS[4], now_s, 'm')
end
return out
