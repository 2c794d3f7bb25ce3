-- configure: store a queue's options, seen by every client.
-- KEYS[1] config hash  KEYS[2] marker (a gate may have opened: wake fetches)
-- ARGV[1] max_len (0: unbounded)
-- ARGV[2] rate_limit (0: none)  ARGV[3] rate_period_ms  ARGV[4] rate_burst
-- ARGV[5] concurrency_limit (0: none)
-- ARGV[6] pause_after_failures (0: off)  ARGV[7] pause_min_ms  ARGV[8] pause_max_ms
redis.call('HSET', KEYS[1], 'max_len', ARGV[1], 'rate_limit', ARGV[2], 'rate_period', ARGV[3],
  'rate_burst', ARGV[4], 'climit', ARGV[5], 'pause_after', ARGV[6], 'pause_min', ARGV[7],
  'pause_max', ARGV[8])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'm')
return 0
