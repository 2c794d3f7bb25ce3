-- ack: settle a leased job as done, if the caller still holds its lease.
-- KEYS[1] job hash  KEYS[2] active zset  KEYS[3] id lookup (runq:id:ID)
-- KEYS[4] finish notice list {runq:Q}:done:ID (wakes runq_job_wait)
-- ARGV[1] id  ARGV[2] lease token  ARGV[3] result (may be '')  ARGV[4] result ttl ms
-- KEYS[5] config hash  KEYS[6] gate state hash  KEYS[7] pending  KEYS[8] marker
-- KEYS[9] {runq:Q}:unique:<the job's unique key> (released if the job holds it
--         until done)
-- Returns 0 | -9 (stale: the lease was lost)
-- One read of the record: the lease check and the unique-until-done fields.
local st = redis.pcall('HMGET', KEYS[1], 'state', 'token', 'uud', 'ukey')
if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[2] then return -9 end
local t = redis.call('TIME')
-- Integers go to redis.call as strings (a Lua number is formatted with %.17g).
local now_s = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('ZREM', KEYS[2], ARGV[1])
-- Queue gates: a success ends an automatic pause and its failure count; a
-- freed concurrency slot or an ended pause wakes a blocked fetch.
local gcfg = redis.call('HMGET', KEYS[5], 'climit')
local gst = redis.call('HMGET', KEYS[6], 'fails', 'level')
local reopened = (tonumber(gst[2]) or 0) > 0
if reopened or (tonumber(gst[1]) or 0) > 0 then
  redis.call('HSET', KEYS[6], 'fails', '0', 'level', '0', 'until', '0', 'probe', '')
end
if (reopened or (tonumber(gcfg[1]) or 0) > 0) and redis.call('ZCARD', KEYS[7]) > 0 then
  redis.call('ZADD', KEYS[8], now_s, 'm')
end
-- Unique-until-done: the job lets its unique key go in this same step, if it
-- still holds it (a later holder's key is never touched).
if st[3] == '1' and st[4] and st[4] ~= '' and KEYS[9] and redis.call('GET', KEYS[9]) == ARGV[1] then
  redis.call('DEL', KEYS[9])
end
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', KEYS[1], 'state', '4', 'result', ARGV[3], 'token', '0', 'lease', '0',
    'finished', now_s)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
else
  redis.call('DEL', KEYS[1], KEYS[3]) -- no result kept: nothing to write first
end
redis.call('RPUSH', KEYS[4], 'done')
redis.call('PEXPIRE', KEYS[4], '60000')
return 0
