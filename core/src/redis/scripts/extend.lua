-- extend: push a held lease to now + lease_ms. The job gets an entry of its
-- own in active (member: its id) and leaves its fetch call's group, whose
-- other jobs keep the group's expiry (_record.lua, "Leases").
-- KEYS[1] lease hash  KEYS[2] active  KEYS[3] lgroups
-- ARGV[1] id  ARGV[2] token  ARGV[3] lease ms
-- Returns {0, new expiry} | {-9}
local lv = redis.call('HGET', KEYS[1], ARGV[1])
if not lease_token_ok(lv, ARGV[2]) then return {-9} end
if not lease_own(lv) then
  redis.call('HSET', KEYS[1], ARGV[1], lv .. '|x')
  lease_group_leave(KEYS[2], KEYS[3], ARGV[2], 1)
end
local now = now_ms()
local expiry = string.format('%d', now + tonumber(ARGV[3]))
-- Plain ZADD (not XX): a missing entry of a job still held is re-created,
-- so the lease index heals itself while the holder lives.
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
return {0, tonumber(expiry)}
