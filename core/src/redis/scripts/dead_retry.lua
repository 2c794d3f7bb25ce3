-- dead_retry: move a dead job back to pending with a fresh set of attempts.
-- KEYS[1] job  KEYS[2] dead  KEYS[3] pending  KEYS[4] marker
-- KEYS[5] finish notice list (cleared: the job is not finished any more)
-- ARGV[1] id
-- Returns 0 | -13 (no such job) | -15 (the job is not dead)
local st = redis.pcall('HMGET', KEYS[1], 'state', 'prio')
if type(st) ~= 'table' or st.err or not st[1] then return -13 end
if st[1] ~= '5' then return -15 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 2, 'attempt', 0, 'token', '0', 'lease', 0, 'eta', now)
redis.call('ZADD', KEYS[3], -(tonumber(st[2]) or 0), ARGV[1])
redis.call('ZADD', KEYS[4], now, 'm')
redis.call('DEL', KEYS[5])
return 0
