-- fail: a failed attempt. Retry at now + delay while attempts are left
-- (attempt <= max_retries), else move the job to the dead letters.
-- With ARGV[5] = '1' (bury) the job goes to the dead letters at once, with
-- ARGV[3] as the reason, whatever attempts it has left: the client could not
-- read it (corrupt fields the fetch script cannot judge, such as malformed
-- msgpack args), so a retry could only fail the same way. As a failure it
-- counts for the queue gates, like memory/memory.c's fail_or_bury.
-- KEYS[1] job  KEYS[2] active  KEYS[3] scheduled  KEYS[4] dead  KEYS[5] marker
-- KEYS[6] finish notice list {runq:Q}:done:ID (wakes runq_job_wait)
-- ARGV[1] id  ARGV[2] token  ARGV[3] error message  ARGV[4] retry delay ms
-- ARGV[5] '1': bury (absent or '0': a failed attempt)
-- KEYS[7] config hash  KEYS[8] gate state hash  KEYS[9] pending
-- KEYS[10] {runq:Q}:unique:<the job's unique key> (released when the job goes
--          to the dead letters, if it holds the key until done)
-- Returns {0, dead (0/1)} | {-9}
-- One read of the record: the lease check, the attempt count and the
-- unique-until-done fields.
local st = redis.pcall('HMGET', KEYS[1], 'state', 'token', 'attempt', 'maxr', 'uud', 'ukey')
if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[2] then return {-9} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
redis.call('ZREM', KEYS[2], id)
-- Queue gates: count failed attempts in a row; N of them pause the queue
-- (pause_min_ms, doubling per automatic pause up to pause_max_ms). Once the
-- interval has passed, any failure (the probe's, or a late one) pauses again.
-- A freed concurrency slot wakes a blocked fetch.
local gcfg = redis.call('HMGET', KEYS[7], 'climit', 'pause_after', 'pause_min', 'pause_max')
local after = tonumber(gcfg[2]) or 0
local gst = redis.call('HMGET', KEYS[8], 'fails', 'level', 'until')
local fails, level = tonumber(gst[1]) or 0, tonumber(gst[2]) or 0
if after <= 0 then
  if fails > 0 or level > 0 then
    redis.call('HSET', KEYS[8], 'fails', 0, 'level', 0, 'until', 0, 'probe', '')
  end
elseif level > 0 or fails + 1 >= after then
  if level == 0 or now >= (tonumber(gst[3]) or 0) then
    level = level + 1
    local d, cap = tonumber(gcfg[3]) or 1000, tonumber(gcfg[4]) or 300000
    for _ = 2, level do
      if d >= cap then break end
      d = d * 2
    end
    redis.call('HSET', KEYS[8], 'fails', 0, 'level', level, 'until', now + math.min(d, cap),
      'probe', '')
  end
else
  redis.call('HSET', KEYS[8], 'fails', fails + 1)
end
if (tonumber(gcfg[1]) or 0) > 0 and redis.call('ZCARD', KEYS[9]) > 0 then
  redis.call('ZADD', KEYS[5], now, 'm')
end
if ARGV[5] ~= '1' and (tonumber(st[3]) or 0) <= (tonumber(st[4]) or 0) then
  local delay = tonumber(ARGV[4])
  if delay < 0 then delay = 0 end
  local eta = now + delay
  redis.call('HSET', KEYS[1], 'state', 1, 'eta', eta, 'error', ARGV[3], 'token', '0', 'lease', 0)
  redis.call('ZADD', KEYS[3], eta, id)
  redis.call('ZADD', KEYS[5], now, 'm')
  return {0, 0}
end
-- Unique-until-done: the job lets its unique key go in this same step, if it
-- still holds it (a later holder's key is never touched).
if st[5] == '1' and st[6] and st[6] ~= '' and KEYS[10] and redis.call('GET', KEYS[10]) == id then
  redis.call('DEL', KEYS[10])
end
redis.call('HSET', KEYS[1], 'state', 5, 'error', ARGV[3], 'token', '0', 'lease', 0, 'finished', now)
redis.call('ZADD', KEYS[4], now, id)
redis.call('RPUSH', KEYS[6], 'dead')
redis.call('PEXPIRE', KEYS[6], 60000)
return {0, 1}
