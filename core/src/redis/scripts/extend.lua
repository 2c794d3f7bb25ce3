-- extend: push a held lease to now + lease_ms.
-- KEYS[1] lease hash  KEYS[2] active
-- ARGV[1] id  ARGV[2] token  ARGV[3] lease ms
-- Returns {0, new expiry} | {-9}
if not lease_token_ok(redis.call('HGET', KEYS[1], ARGV[1]), ARGV[2]) then return {-9} end
local now = now_ms()
local expiry = string.format('%d', now + tonumber(ARGV[3]))
-- Plain ZADD (not XX): a missing lease entry of a job still held is
-- re-created, so the lease index heals itself while the holder lives.
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
return {0, tonumber(expiry)}
