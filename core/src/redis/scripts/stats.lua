-- stats: one consistent snapshot of a queue's counts and pause state.
-- KEYS[1] scheduled  KEYS[2] pending  KEYS[3] lease  KEYS[4] dead
-- KEYS[5] config hash  KEYS[6] gate state hash
-- KEYS[7] rkwait  KEYS[8] ready (jobs behind a rate key and in the ready list
-- count as pending)
-- Returns {scheduled, pending, active, dead, paused (0 none, 1 manual,
-- 2 automatic), end of the automatic pause (ms; 0: its probe may go or is out)}
local now = now_ms()
local g = redis.call('HMGET', KEYS[6], 'paused', 'level', 'until')
local paused, till = 0, 0
if g[1] == '1' then
  paused = 1
elseif (tonumber(redis.call('HGET', KEYS[5], 'pause_after')) or 0) > 0 and
    (tonumber(g[2]) or 0) > 0 then
  paused = 2
  if now < (tonumber(g[3]) or 0) then till = tonumber(g[3]) end
end
local pending = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[7]) +
  redis.call('LLEN', KEYS[8])
return {redis.call('ZCARD', KEYS[1]), pending,
        lease_count(KEYS[3]), redis.call('ZCARD', KEYS[4]), paused, till}
