-- dead_retry: move a dead job back to pending with a fresh set of attempts.
-- KEYS[1] jobs  KEYS[2] dead  KEYS[3] pending  KEYS[4] marker  KEYS[5] att
-- KEYS[6] finish notice list (cleared: the job is not finished any more)
-- KEYS[7] uud  KEYS[8] rkeys  KEYS[9] rkwait
-- KEYS[10] {runq:Q}:unique:<ukey>  KEYS[11] {runq:Q}:rk:<rkey>
-- ARGV[1] the queue's key prefix "{runq:Q}:"  ARGV[2] id
-- ARGV[3] ukey as read  ARGV[4] rkey as read (the client reads the record
-- first, to declare those keys)
-- Returns 0 | -13 (no such job) | -15 (the job is not dead)
--   | {-6, holder} (unique-until-done: another job took the key meanwhile)
--   | -14 (the record's keys are not the ones the client read)
local tag, id = ARGV[1], ARGV[2]
local rec = redis.call('HGET', KEYS[1], id)
if not rec then return -13 end
-- not dead: waiting, running, or done with a kept result (its record stays)
if not redis.call('ZSCORE', KEYS[2], id) then return -15 end
local h = rec_parse(rec) or {prio = 0, ukey = '', rkey = '', uud = false}
if h.ukey ~= ARGV[3] or h.rkey ~= ARGV[4] then return -14 end
local _, now_s = now_ms()
-- Unique-until-done: the job takes its key again; if another job holds it
-- now the retry is refused, so two live jobs never share the key.
if h.uud and h.ukey ~= '' then
  local holder = redis.call('GET', KEYS[10])
  if holder and holder ~= id then return {-6, holder} end
  redis.call('SET', KEYS[10], id)
  redis.call('HSET', KEYS[7], id, h.ukey)
end
redis.call('ZREM', KEYS[2], id)
local _, _, err = att_parse(redis.call('HGET', KEYS[5], id))
redis.call('HSET', KEYS[5], id, att_build(0, now_s, err))
make_ready(tag, {pending = KEYS[3], rkeys = KEYS[8], rkwait = KEYS[9]}, id,
  h.prio, h.rkey, now_s)
redis.call('ZADD', KEYS[4], now_s, 'm')
redis.call('DEL', KEYS[6])
return 0
