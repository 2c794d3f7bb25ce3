-- extend: push held leases to now + lease_ms, one job's or a fetch call's.
-- With an id: that job gets an entry of its own in active (member: its id)
-- and leaves its fetch call's group, whose other jobs keep the group's
-- expiry (_record.lua, "Leases"). Without (ARGV[1] ''): the group's entry
-- itself moves, which extends every job still leased under the group; the
-- keeper does this when it holds all of a call's unsettled jobs, one call
-- for the group instead of one per job and no own entries to remove later.
-- KEYS[1] lease hash  KEYS[2] active  KEYS[3] lgroups
-- ARGV[1] id or ''  ARGV[2] token  ARGV[3] lease ms
-- Returns {0, new expiry} | {-9}
local id, token = ARGV[1], ARGV[2]
local member
if id == '' then
  -- The count goes with the group's last job or its recovery.
  if redis.call('HEXISTS', KEYS[3], '#' .. token) == 0 then return {-9} end
  member = '@' .. token
else
  local lv = redis.call('HGET', KEYS[1], id)
  if not lease_token_ok(lv, token) then return {-9} end
  if not lease_own(lv) then
    redis.call('HSET', KEYS[1], id, lv .. '|x')
    lease_group_leave(KEYS[2], KEYS[3], token, 1)
  end
  member = id
end
local now = now_ms()
local expiry = string.format('%d', now + tonumber(ARGV[3]))
-- Plain ZADD (not XX): a missing entry of a lease still held is re-created,
-- so the lease index heals itself while the holder lives.
redis.call('ZADD', KEYS[2], expiry, member)
return {0, tonumber(expiry)}
