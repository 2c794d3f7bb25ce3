-- get: a snapshot of one job of one queue, and, with ARGV[2] = '1', register
-- a wait for it (runq_job_wait): the job's finish notice is then pushed when
-- it becomes done or dead (ack.lua, fail.lua, fetch.lua).
-- KEYS[1] jobs  KEYS[2] active  KEYS[3] lease  KEYS[4] att  KEYS[5] scheduled
-- KEYS[6] dead  KEYS[7] waiters
-- ARGV[1] id  ARGV[2] '1': register a wait
-- Returns {0} (no such job) | {4, fin} (done: the value ack.lua stored, less
--   its expiry: "4|finished|attempt|#result|#att|" result att record)
--   | {state, record, att, token, lease expiry, time, attempt}: state 1
--     scheduled (time: eta), 2 pending, 3 active (token, lease expiry and
--     attempt from the lease; otherwise '', 0, 0), 5 dead (time: of death);
--     att: the attempt state or ''
local id = ARGV[1]
local rec = redis.call('HGET', KEYS[1], id)
if not rec then return {0} end
if string.byte(rec, 1) == 52 then -- '4': done, its result kept (_record.lua)
  local expiry, p = string.match(rec, '^4|(%d+)|()')
  -- unreadable: the client says it is malformed
  if not expiry then return {4, rec} end
  -- expired and not swept yet: gone, as it will be
  if tonumber(expiry) <= now_ms() then return {0} end
  return {4, '4|' .. string.sub(rec, p)}
end
local att = redis.call('HGET', KEYS[4], id) or ''
local died = redis.call('ZSCORE', KEYS[6], id)
if died then return {5, rec, att, '', 0, tonumber(died), 0} end
if ARGV[2] == '1' then redis.call('HSET', KEYS[7], id, '1') end
local lv = redis.call('HGET', KEYS[3], id)
if lv then
  -- the lease expires with its own entry in active, or with its group's
  local token = lease_token(lv)
  local exp = redis.call('ZSCORE', KEYS[2], lease_own(lv) and id or '@' .. token)
  return {3, rec, att, token, tonumber(exp) or 0, 0, lease_attempt(lv)}
end
local eta = redis.call('ZSCORE', KEYS[5], id)
if eta then return {1, rec, att, '', 0, tonumber(eta), 0} end
return {2, rec, att, '', 0, 0, 0}
