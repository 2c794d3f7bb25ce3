-- enqueue: store one new job, atomically with its unique key and max_len check.
-- KEYS[1] job hash        {runq:Q}:job:ID
-- KEYS[2] scheduled zset  {runq:Q}:scheduled   (score: eta ms)
-- KEYS[3] pending zset    {runq:Q}:pending     (score: -priority; ties by id)
-- KEYS[4] marker zset     {runq:Q}:marker      (wakes blocked fetches)
-- KEYS[5] queue config    {runq:Q}:config
-- KEYS[6] unique key      {runq:Q}:unique:KEY  (unused when ARGV[12] == '')
-- KEYS[7] id lookup       runq:id:ID -> Q       (get/wait by id)
-- ARGV: id task queue args max_retries priority eta_ms delay_ms timeout_ms
--       deadline_ms ttl_ms unique_key unique_ttl_ms meta
--       (meta, ARGV[14]: msgpack map of str -> str, or '' / absent for none)
-- Rate key and unique-until-done (absent: none):
-- KEYS[8] {runq:Q}:rk:KEY (the key's waiting jobs)  KEYS[9] {runq:Q}:rkeys
-- KEYS[10] {runq:Q}:rkwait (every job waiting behind a rate key)
-- ARGV[15] rate key ('' none)  ARGV[16] rate interval ms  ARGV[17] unique until done (1/0)
-- Returns {0, id, created, eta, deadline, state} | {-6, holder_id} | {-7}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local ukey = ARGV[12]

if ukey ~= '' then
  local holder = redis.call('GET', KEYS[6])
  if holder then return {-6, holder} end
end
local maxlen = tonumber(redis.call('HGET', KEYS[5], 'max_len') or '0') or 0
if maxlen > 0 then
  local waiting = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
  if KEYS[10] then waiting = waiting + redis.call('ZCARD', KEYS[10]) end -- behind rate keys
  if waiting >= maxlen then return {-7} end
end

local eta = tonumber(ARGV[7])
if eta == 0 then eta = now + tonumber(ARGV[8]) end
local deadline = tonumber(ARGV[10])
local ttl = tonumber(ARGV[11])
if ttl > 0 and (deadline == 0 or now + ttl < deadline) then deadline = now + ttl end

if ukey ~= '' then
  local uttl = tonumber(ARGV[13])
  if uttl > 0 then redis.call('SET', KEYS[6], id, 'PX', uttl)
  else redis.call('SET', KEYS[6], id) end
end

local prio = tonumber(ARGV[6])
local state = 2
if eta > now then state = 1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'id', id, 'task', ARGV[2], 'queue', ARGV[3], 'args', ARGV[4],
  'state', state, 'attempt', 0, 'maxr', ARGV[5], 'prio', prio, 'created', now,
  'eta', eta, 'timeout', ARGV[9], 'deadline', deadline, 'ukey', ukey,
  'uttl', ARGV[13], 'token', '0', 'lease', 0, 'v', 1)
local meta = ARGV[14] or ''
if meta ~= '' then redis.call('HSET', KEYS[1], 'meta', meta) end
-- Rate key: a ready keyed job waits in its key's zset, not in pending; a key
-- seen for the first time may promote its first job at once (NX: a key that
-- waits out its interval, or has a job in flight (+inf), keeps its time).
local rkey = ARGV[15] or ''
if rkey ~= '' then redis.call('HSET', KEYS[1], 'rkey', rkey, 'rint', ARGV[16]) end
if ARGV[17] == '1' then redis.call('HSET', KEYS[1], 'uud', 1) end
if state == 1 then
  redis.call('ZADD', KEYS[2], eta, id)
elseif rkey ~= '' then
  redis.call('ZADD', KEYS[8], -prio, id)
  redis.call('ZADD', KEYS[10], -prio, id)
  redis.call('ZADD', KEYS[9], 'NX', now, rkey)
else
  redis.call('ZADD', KEYS[3], -prio, id)
end
-- Any change of what is due wakes one blocked fetch, which re-computes its
-- wait (a newly scheduled job may be due sooner than what it waits for).
redis.call('ZADD', KEYS[4], now, 'm')
redis.call('SET', KEYS[7], ARGV[3])
return {0, id, now, eta, deadline, state}
