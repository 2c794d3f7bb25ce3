-- release: give a leased, not started job back, uncounting the attempt it was
-- fetched with.
-- KEYS[1] jobs  KEYS[2] active  KEYS[3] lease  KEYS[4] att  KEYS[5] pending
-- KEYS[6] marker  KEYS[7] gate state (a released probe job lets another be
-- the probe)  KEYS[8] rkeys  KEYS[9] rkwait  KEYS[10] lgroups
-- ARGV[1] the queue's key prefix "{runq:Q}:" (a job with a rate key goes back
--         behind its key, <prefix>rk:<key>, not to pending)
-- ARGV[2] id  ARGV[3] token
-- Returns 0 | -9
local tag, id = ARGV[1], ARGV[2]
local lv = redis.call('HGET', KEYS[3], id)
if not lease_token_ok(lv, ARGV[3]) then return -9 end
local _, now_s = now_ms()
local attempt = lease_attempt(lv) - 1
lease_end_one(KEYS[2], KEYS[3], KEYS[10], id, lv, ARGV[3])
if redis.call('HGET', KEYS[7], 'probe') == id then redis.call('HSET', KEYS[7], 'probe', '') end
local old = redis.call('HGET', KEYS[4], id)
if old or attempt > 0 then
  local _, eta, err = att_parse(old)
  redis.call('HSET', KEYS[4], id, att_build(math.max(attempt, 0), eta, err))
end
local h = rec_parse(redis.call('HGET', KEYS[1], id))
make_ready(tag, {pending = KEYS[5], rkeys = KEYS[8], rkwait = KEYS[9]}, id,
  h and h.prio or 0, h and h.rkey or '', now_s)
redis.call('ZADD', KEYS[6], now_s, 'm')
return 0
