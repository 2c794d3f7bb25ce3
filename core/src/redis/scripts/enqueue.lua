-- enqueue: store N >= 1 new jobs of one queue, each atomically with its unique
-- key and max_len check (one call per batch: TIME and the config read once).
-- Job 1 (the single-job form, also what lua/runq/resty.lua sends):
-- KEYS[1] job hash        {runq:Q}:job:ID
-- KEYS[2] scheduled zset  {runq:Q}:scheduled   (score: eta ms)
-- KEYS[3] pending zset    {runq:Q}:pending     (score: -priority; ties by id)
-- KEYS[4] marker zset     {runq:Q}:marker      (wakes blocked fetches)
-- KEYS[5] queue config    {runq:Q}:config
-- KEYS[6] unique key      {runq:Q}:unique:KEY  (unused when the unique key is '')
-- KEYS[7] id lookup       runq:id:ID -> Q       (get/wait by id)
-- ARGV: id task queue args max_retries priority eta_ms delay_ms timeout_ms
--       deadline_ms ttl_ms unique_key unique_ttl_ms meta
--       (meta, ARGV[14]: msgpack map of str -> str, or '' / absent for none)
-- Rate key and unique-until-done (absent: none):
-- KEYS[8] {runq:Q}:rk:KEY (the key's waiting jobs)  KEYS[9] {runq:Q}:rkeys
-- KEYS[10] {runq:Q}:rkwait (every job waiting behind a rate key)
-- ARGV[15] rate key ('' none)  ARGV[16] rate interval ms  ARGV[17] unique until done (1/0)
-- Jobs 2..N (same queue) follow: 4 KEYS each at KEYS[11 + 4(i-2)]: job hash,
-- unique key, id lookup, rk:KEY; 17 ARGV each in job 1's layout at
-- ARGV[17(i-1) + 1]. N = #ARGV / 17 (one job may send 13 to 17 ARGV).
-- Integer ARGV arrive as decimal strings and are stored as given: Lua numbers
-- handed to redis.call would be formatted with %.17g and parsed back.
-- Fields that hold their default are not written (readers take absent as the
-- default): attempt, token, lease (0: not leased), prio, timeout, deadline 0,
-- ukey and uttl without a unique key, meta, rkey, rint, uud.
-- Returns 6 fields per job, in order:
--   0, id, created, eta, deadline, state | -6, holder_id, 0, 0, 0, 0 | -7, '', 0, 0, 0, 0
local fmt = string.format
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = fmt('%d', now)
local n = math.max(1, math.floor(#ARGV / 17))

local maxlen = tonumber(redis.call('HGET', KEYS[5], 'max_len') or '0') or 0
local waiting = 0
if maxlen > 0 then
  waiting = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
  if KEYS[10] then waiting = waiting + redis.call('ZCARD', KEYS[10]) end -- behind rate keys
end

local out, woke = {}, false
for i = 1, n do
  local a, r = 17 * (i - 1), 6 * (i - 1)
  local kjob, kuniq, klookup, krk = KEYS[1], KEYS[6], KEYS[7], KEYS[8]
  if i > 1 then
    local k = 10 + 4 * (i - 2)
    kjob, kuniq, klookup, krk = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  end
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
    if eta == 0 then
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

    if ukey ~= '' then
      local uttl = ARGV[a + 13]
      if tonumber(uttl) > 0 then redis.call('SET', kuniq, id, 'PX', uttl)
      elseif ARGV[a + 17] == '1' then redis.call('SET', kuniq, id) -- held until done or dead
      else
        -- No TTL and not until-done: the 24 h default of runq.h, so that a
        -- producer sending 0 cannot block the key forever.
        redis.call('SET', kuniq, id, 'PX', 86400000)
      end
    end

    local prio_s = ARGV[a + 6]
    local score = prio_s == '0' and '0' or fmt('%d', -tonumber(prio_s))
    local state = eta > now and 1 or 2
    local rkey = ARGV[a + 15] or ''
    local f = {kjob, 'v', '1', 'id', id, 'task', ARGV[a + 2], 'queue', ARGV[a + 3],
      'args', ARGV[a + 4], 'state', state == 1 and '1' or '2', 'maxr', ARGV[a + 5],
      'created', now_s, 'eta', eta_s}
    local function field(name, value)
      f[#f + 1] = name
      f[#f + 1] = value
    end
    if prio_s ~= '0' then field('prio', prio_s) end
    if ARGV[a + 9] ~= '0' then field('timeout', ARGV[a + 9]) end
    if deadline ~= 0 then field('deadline', deadline_s) end
    if ukey ~= '' then
      field('ukey', ukey)
      field('uttl', ARGV[a + 13])
    end
    local meta = ARGV[a + 14] or ''
    if meta ~= '' then field('meta', meta) end
    if rkey ~= '' then
      field('rkey', rkey)
      field('rint', ARGV[a + 16])
    end
    if ARGV[a + 17] == '1' then field('uud', '1') end
    redis.call('DEL', kjob)
    redis.call('HSET', unpack(f))
    -- Rate key: a ready keyed job waits in its key's zset, not in pending; a
    -- key seen for the first time may promote its first job at once (NX: a
    -- key that waits out its interval, or has a job in flight (+inf), keeps
    -- its time).
    if state == 1 then
      redis.call('ZADD', KEYS[2], eta_s, id)
    elseif rkey ~= '' then
      redis.call('ZADD', krk, score, id)
      redis.call('ZADD', KEYS[10], score, id)
      redis.call('ZADD', KEYS[9], 'NX', now_s, rkey)
    else
      redis.call('ZADD', KEYS[3], score, id)
    end
    woke = true
    redis.call('SET', klookup, ARGV[a + 3])
    out[r + 1], out[r + 2], out[r + 3], out[r + 4], out[r + 5], out[r + 6] =
      0, id, now, eta, deadline, state
  end
end
-- Any change of what is due wakes one blocked fetch, which re-computes its
-- wait (a newly scheduled job may be due sooner than what it waits for).
if woke then redis.call('ZADD', KEYS[4], now_s, 'm') end
return out
