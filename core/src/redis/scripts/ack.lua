-- ack: settle N >= 1 leased jobs of one queue as done, each only if the caller
-- still holds its lease (one call per batch: TIME and the gate reads once).
-- Job 1:
-- KEYS[1] job hash  KEYS[2] active zset  KEYS[3] id lookup (runq:id:ID)
-- KEYS[4] finish notice list {runq:Q}:done:ID (wakes runq_job_wait)
-- ARGV[1] id  ARGV[2] lease token  ARGV[3] result (may be '')  ARGV[4] result ttl ms
-- KEYS[5] config hash  KEYS[6] gate state hash  KEYS[7] pending  KEYS[8] marker
-- KEYS[9] {runq:Q}:unique:<the job's unique key> (released if the job holds it
--         until done)
-- Jobs 2..N (same queue) follow: 4 KEYS each at KEYS[10 + 4(i-2)]: job hash,
-- id lookup, finish notice, unique key; 4 ARGV each in job 1's layout at
-- ARGV[4(i-1) + 1]. N = #ARGV / 4.
-- Returns one code per job, in order: 0 | -9 (stale: the lease was lost)
local n = math.floor(#ARGV / 4)
local out = {}
local now_s
local acked = false
for i = 1, n do
  local a = 4 * (i - 1)
  local kjob, klookup, kdone, kuniq = KEYS[1], KEYS[3], KEYS[4], KEYS[9]
  if i > 1 then
    local k = 9 + 4 * (i - 2)
    kjob, klookup, kdone, kuniq = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  end
  local id = ARGV[a + 1]
  -- One read of the record: the lease check and the unique-until-done fields.
  local st = redis.pcall('HMGET', kjob, 'state', 'token', 'uud', 'ukey')
  if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[a + 2] then
    out[i] = -9
  else
    if not now_s then
      local t = redis.call('TIME')
      -- Integers go to redis.call as strings (a Lua number is formatted with %.17g).
      now_s = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    end
    acked = true
    redis.call('ZREM', KEYS[2], id)
    -- Unique-until-done: the job lets its unique key go in this same step, if
    -- it still holds it (a later holder's key is never touched).
    if st[3] == '1' and st[4] and st[4] ~= '' and kuniq and redis.call('GET', kuniq) == id then
      redis.call('DEL', kuniq)
    end
    if tonumber(ARGV[a + 4]) > 0 then
      redis.call('HSET', kjob, 'state', '4', 'result', ARGV[a + 3], 'token', '0', 'lease', '0',
        'finished', now_s)
      redis.call('PEXPIRE', kjob, ARGV[a + 4])
      redis.call('PEXPIRE', klookup, ARGV[a + 4])
    else
      redis.call('DEL', kjob, klookup) -- no result kept: nothing to write first
    end
    redis.call('RPUSH', kdone, 'done')
    redis.call('PEXPIRE', kdone, '60000')
    out[i] = 0
  end
end
-- Queue gates, once per call: a success ends an automatic pause and its
-- failure count; a freed concurrency slot or an ended pause wakes a blocked
-- fetch.
if acked then
  local gcfg = redis.call('HMGET', KEYS[5], 'climit')
  local gst = redis.call('HMGET', KEYS[6], 'fails', 'level')
  local reopened = (tonumber(gst[2]) or 0) > 0
  if reopened or (tonumber(gst[1]) or 0) > 0 then
    redis.call('HSET', KEYS[6], 'fails', '0', 'level', '0', 'until', '0', 'probe', '')
  end
  if (reopened or (tonumber(gcfg[1]) or 0) > 0) and redis.call('ZCARD', KEYS[7]) > 0 then
    redis.call('ZADD', KEYS[8], now_s, 'm')
  end
end
return out
