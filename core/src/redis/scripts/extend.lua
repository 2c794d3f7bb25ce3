-- extend: push a held lease to now + lease_ms.
-- KEYS[1] job  KEYS[2] active
-- ARGV[1] id  ARGV[2] token  ARGV[3] lease ms
-- Returns {0, new expiry} | {-9}
local st = redis.pcall('HMGET', KEYS[1], 'state', 'token')
if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[2] then return {-9} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease', expiry)
-- Plain ZADD (not XX): a missing lease entry of a job still held is
-- re-created, so the lease index heals itself while the holder lives.
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
return {0, expiry}
