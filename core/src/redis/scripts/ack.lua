-- ack: settle a leased job as done, if the caller still holds its lease.
-- KEYS[1] job hash  KEYS[2] active zset  KEYS[3] id lookup (runq:id:ID)
-- KEYS[4] finish notice list {runq:Q}:done:ID (wakes runq_job_wait)
-- ARGV[1] id  ARGV[2] lease token  ARGV[3] result (may be '')  ARGV[4] result ttl ms
-- Returns 0 | -9 (stale: the lease was lost)
local st = redis.pcall('HMGET', KEYS[1], 'state', 'token')
if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[2] then return -9 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 4, 'result', ARGV[3], 'token', '0', 'lease', 0, 'finished', now)
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
else
  redis.call('DEL', KEYS[1], KEYS[3])
end
redis.call('RPUSH', KEYS[4], 'done')
redis.call('PEXPIRE', KEYS[4], 60000)
return 0
