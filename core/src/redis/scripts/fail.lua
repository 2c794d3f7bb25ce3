-- fail: a failed attempt. Retry at now + delay while attempts are left
-- (attempt <= max_retries), else move the job to the dead letters.
-- With ARGV[6] = '1' (bury) the job goes to the dead letters at once, with
-- ARGV[4] as the reason, whatever attempts it has left: the client could not
-- read it (corrupt fields the fetch script cannot judge, such as malformed
-- msgpack args), so a retry could only fail the same way. As a failure it
-- counts for the queue gates, like memory/memory.c's fail_or_bury.
-- KEYS[1] jobs  KEYS[2] active  KEYS[3] lease  KEYS[4] att  KEYS[5] scheduled
-- KEYS[6] dead  KEYS[7] marker  KEYS[8] config  KEYS[9] gate state
-- KEYS[10] pending  KEYS[11] ready  KEYS[12] uud  KEYS[13] waiters
-- KEYS[14] lgroups
-- ARGV[1] the queue's key prefix "{runq:Q}:"  ARGV[2] id  ARGV[3] token
-- ARGV[4] error message  ARGV[5] retry delay ms  ARGV[6] '1': bury
-- Returns {0, dead (0/1)} | {-9}
local tag, id = ARGV[1], ARGV[2]
local lv = redis.call('HGET', KEYS[3], id)
if not lease_token_ok(lv, ARGV[3]) then return {-9} end
local now, now_s = now_ms()
local attempt = lease_attempt(lv)
lease_end_one(KEYS[2], KEYS[3], KEYS[14], id, lv, ARGV[3])
-- Queue gates: count failed attempts in a row; N of them pause the queue
-- (pause_min_ms, doubling per automatic pause up to pause_max_ms). Once the
-- interval has passed, any failure (the probe's, or a late one) pauses again.
-- A freed concurrency slot wakes a blocked fetch.
local gcfg = redis.call('HMGET', KEYS[8], 'climit', 'pause_after', 'pause_min', 'pause_max')
local after = tonumber(gcfg[2]) or 0
local gst = redis.call('HMGET', KEYS[9], 'fails', 'level', 'until')
local fails, level = tonumber(gst[1]) or 0, tonumber(gst[2]) or 0
if after <= 0 then
  if fails > 0 or level > 0 then
    redis.call('HSET', KEYS[9], 'fails', '0', 'level', '0', 'until', '0', 'probe', '')
  end
elseif level > 0 or fails + 1 >= after then
  if level == 0 or now >= (tonumber(gst[3]) or 0) then
    level = level + 1
    local d, cap = tonumber(gcfg[3]) or 1000, tonumber(gcfg[4]) or 300000
    for _ = 2, level do
      if d >= cap then break end
      d = d * 2
    end
    redis.call('HSET', KEYS[9], 'fails', '0', 'level', string.format('%d', level), 'until',
      string.format('%d', now + math.min(d, cap)), 'probe', '')
  end
else
  redis.call('HSET', KEYS[9], 'fails', string.format('%d', fails + 1))
end
if (tonumber(gcfg[1]) or 0) > 0 and
    redis.call('ZCARD', KEYS[10]) + redis.call('LLEN', KEYS[11]) > 0 then
  redis.call('ZADD', KEYS[7], now_s, 'm')
end
local rec = redis.call('HGET', KEYS[1], id)
local h = rec_parse(rec)
if ARGV[6] ~= '1' and h and attempt <= h.maxr then
  local delay = tonumber(ARGV[5])
  if delay < 0 then delay = 0 end
  local eta_s = string.format('%d', now + delay)
  redis.call('HSET', KEYS[4], id, att_build(attempt, eta_s, ARGV[4]))
  redis.call('ZADD', KEYS[5], eta_s, id)
  redis.call('ZADD', KEYS[7], now_s, 'm')
  return {0, 0}
end
local _, eta = att_parse(redis.call('HGET', KEYS[4], id))
to_dead(tag, {jobs = KEYS[1], att = KEYS[4], dead = KEYS[6], uud = KEYS[12], waiters = KEYS[13]},
  id, attempt, eta, ARGV[4], now_s)
return {0, 1}
