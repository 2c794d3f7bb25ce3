-- release: give a leased, not started job back to pending, uncounting the
-- attempt it was fetched with.
-- KEYS[1] job  KEYS[2] active  KEYS[3] pending  KEYS[4] marker
-- ARGV[1] id  ARGV[2] token
-- KEYS[5] gate state hash (a released probe job lets another be the probe)
-- KEYS[6] {runq:Q}:rk:<the job's rate key>  KEYS[7] rkeys  KEYS[8] rkwait
--         (a job with a rate key goes back behind its key, not to pending)
-- Returns 0 | -9
local st = redis.pcall('HMGET', KEYS[1], 'state', 'token', 'attempt', 'prio', 'rkey')
if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[2] then return -9 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local attempt = (tonumber(st[3]) or 1) - 1
if attempt < 0 then attempt = 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[5], 'probe') == ARGV[1] then redis.call('HSET', KEYS[5], 'probe', '') end
redis.call('HSET', KEYS[1], 'state', 2, 'attempt', attempt, 'token', '0', 'lease', 0)
local rkey = st[5] or ''
if rkey ~= '' and KEYS[8] then
  -- Rate key: back behind its key (which keeps the time set at the lease).
  redis.call('ZADD', KEYS[6], -(tonumber(st[4]) or 0), ARGV[1])
  redis.call('ZADD', KEYS[8], -(tonumber(st[4]) or 0), ARGV[1])
  redis.call('ZADD', KEYS[7], 'NX', now, rkey)
else
  redis.call('ZADD', KEYS[3], -(tonumber(st[4]) or 0), ARGV[1])
end
redis.call('ZADD', KEYS[4], now, 'm')
return 0
