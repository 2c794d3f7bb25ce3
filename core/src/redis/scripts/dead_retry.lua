-- dead_retry: move a dead job back to pending with a fresh set of attempts.
-- KEYS[1] job  KEYS[2] dead  KEYS[3] pending  KEYS[4] marker
-- KEYS[5] finish notice list (cleared: the job is not finished any more)
-- ARGV[1] id
-- Rate key and unique-until-done (the client reads ukey and rkey first):
-- KEYS[6] {runq:Q}:unique:<ukey>  KEYS[7] {runq:Q}:rk:<rkey>  KEYS[8] rkeys
-- KEYS[9] rkwait  ARGV[2] ukey as read  ARGV[3] rkey as read
-- Returns 0 | -13 (no such job) | -15 (the job is not dead)
--   | {-6, holder} (unique-until-done: another job took the key meanwhile)
--   | -14 (the record's keys are not the ones the client read)
local st = redis.pcall('HMGET', KEYS[1], 'state', 'prio', 'ukey', 'rkey', 'uud')
if type(st) ~= 'table' or st.err or not st[1] then return -13 end
if st[1] ~= '5' then return -15 end
local ukey, rkey = st[3] or '', st[4] or ''
if ARGV[2] and (ukey ~= ARGV[2] or rkey ~= (ARGV[3] or '')) then return -14 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Unique-until-done: the job takes its key again; if another job holds it
-- now the retry is refused, so two live jobs never share the key.
if st[5] == '1' and ukey ~= '' and KEYS[6] then
  local holder = redis.call('GET', KEYS[6])
  if holder and holder ~= ARGV[1] then return {-6, holder} end
  redis.call('SET', KEYS[6], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 2, 'attempt', 0, 'token', '0', 'lease', 0, 'eta', now)
local prio = tonumber(st[2]) or 0
if rkey ~= '' and KEYS[9] then
  -- Rate key: behind its key, as any job that becomes ready.
  redis.call('ZADD', KEYS[7], -prio, ARGV[1])
  redis.call('ZADD', KEYS[9], -prio, ARGV[1])
  redis.call('ZADD', KEYS[8], 'NX', now, rkey)
else
  redis.call('ZADD', KEYS[3], -prio, ARGV[1])
end
redis.call('ZADD', KEYS[4], now, 'm')
redis.call('DEL', KEYS[5])
return 0
