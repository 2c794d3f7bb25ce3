-- pause: manual pause or resume of a queue.
-- KEYS[1] gate state hash  KEYS[2] marker
-- ARGV[1] '1' pause | '0' resume
-- Resume also ends an automatic pause and pushes the marker, so fetches
-- blocked on it (BZPOPMIN) run at once. Returns 0.
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'paused', 1)
else
  redis.call('HSET', KEYS[1], 'paused', 0, 'fails', 0, 'level', 0, 'until', 0, 'probe', '')
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'm')
end
return 0
