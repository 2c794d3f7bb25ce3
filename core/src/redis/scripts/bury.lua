-- bury: dead-letter a leased job the client could not decode (corrupt
-- fields the fetch script cannot judge, such as malformed msgpack args).
-- KEYS[1] job  KEYS[2] active  KEYS[3] dead  KEYS[4] finish notice list
-- ARGV[1] id  ARGV[2] token  ARGV[3] reason
-- KEYS[5] {runq:Q}:unique:<the job's unique key> (released if the job holds it
--         until done)
-- Returns 0 | -9
-- One read of the record: the lease check and the unique-until-done fields.
local st = redis.pcall('HMGET', KEYS[1], 'state', 'token', 'uud', 'ukey')
if type(st) ~= 'table' or st.err or st[1] ~= '3' or st[2] ~= ARGV[2] then return -9 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
-- Unique-until-done: the job lets its unique key go in this same step, if it
-- still holds it (a later holder's key is never touched).
if st[3] == '1' and st[4] and st[4] ~= '' and KEYS[5] and redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
redis.call('HSET', KEYS[1], 'state', 5, 'error', ARGV[3], 'token', '0', 'lease', 0, 'finished', now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('RPUSH', KEYS[4], 'dead')
redis.call('PEXPIRE', KEYS[4], 60000)
return 0
