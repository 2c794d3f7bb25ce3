-- ack: settle N >= 1 leased jobs of one queue as done, each only if the caller
-- still holds its lease (one call per batch: every write is one command for
-- the whole batch, except the kept results).
-- KEYS[1] jobs  KEYS[2] active  KEYS[3] lease  KEYS[4] att  KEYS[5] config
-- KEYS[6] gate state  KEYS[7] pending  KEYS[8] marker  KEYS[9] uud  KEYS[10] dl
-- KEYS[11] waiters  KEYS[12] ready
-- ARGV[1] the queue's key prefix "{runq:Q}:" (a kept result is stored at
--         <prefix>fin:<id>, unique keys and finish notices are built from it:
--         all in the slot of KEYS[1])
-- ARGV[2] what follows per job: 'k' 5 ARGV (id, lease token, "|attempt|#result|"
--         of the kept value below, result (may be ''), result ttl ms: kept
--         when > 0) | 'n' 2 ARGV (id, lease token: nothing kept, what a
--         client keeping no results sends)
-- Returns one code per job, in order: 0 | -9 (stale: the lease was lost)
local tag = ARGV[1]
local w = ARGV[2] == 'k' and 5 or 2
local n = math.floor((#ARGV - 2) / w)
local ids = {}
for i = 1, n do ids[i] = ARGV[w * (i - 1) + 3] end
local leases = redis.call('HMGET', KEYS[3], unpack(ids))
local out, ok, keep, nok = {}, {}, {}, 0
for i = 1, n do
  if lease_token_ok(leases[i], ARGV[w * (i - 1) + 4]) then
    out[i] = 0
    nok = nok + 1
    ok[nok] = ids[i]
    local ttl = w == 5 and ARGV[5 * i + 2]
    if ttl and ttl ~= '0' and string.byte(ttl, 1) ~= 45 then keep[#keep + 1] = i end -- 45: '-'
  else
    out[i] = -9
  end
end
if nok == 0 then return out end
local now, now_s = now_ms()
local has_att = redis.call('EXISTS', KEYS[4]) == 1
-- Kept results: the record moves to a key of its own that expires with the
-- result, "4|finished|attempt|#result|#att|" .. result .. att .. record
-- (att: the attempt state of earlier attempts, '' if none). The client sends
-- the part it knows, so that no number is formatted here but #att, which is
-- 0 unless the job ran before.
if #keep > 0 then
  local kid = {}
  for j, i in ipairs(keep) do kid[j] = ids[i] end
  local recs = redis.call('HMGET', KEYS[1], unpack(kid))
  local atts = has_att and redis.call('HMGET', KEYS[4], unpack(kid)) or {}
  for j, i in ipairs(keep) do
    local a = 5 * (i - 1) + 2
    local att = atts[j] or ''
    redis.call('SET', tag .. 'fin:' .. ids[i], '4|' .. now_s .. ARGV[a + 3] ..
      (att == '' and '0|' or string.format('%d|', #att)) .. ARGV[a + 4] .. att .. (recs[j] or ''),
      'PX', ARGV[a + 5])
  end
end
lease_drop(KEYS[2], KEYS[3], ok)
redis.call('HDEL', KEYS[1], unpack(ok))
if has_att then redis.call('HDEL', KEYS[4], unpack(ok)) end
if redis.call('EXISTS', KEYS[10]) == 1 then redis.call('ZREM', KEYS[10], unpack(ok)) end
unique_release(tag, KEYS[9], ok)
notify(tag, KEYS[11], ok, 'done')
-- Queue gates, once per call: a success ends an automatic pause and its
-- failure count; a freed concurrency slot or an ended pause wakes a blocked
-- fetch.
local gcfg = redis.call('HMGET', KEYS[5], 'climit')
local gst = redis.call('HMGET', KEYS[6], 'fails', 'level')
local reopened = (tonumber(gst[2]) or 0) > 0
if reopened or (tonumber(gst[1]) or 0) > 0 then
  redis.call('HSET', KEYS[6], 'fails', '0', 'level', '0', 'until', '0', 'probe', '')
end
if (reopened or (tonumber(gcfg[1]) or 0) > 0) and
    redis.call('ZCARD', KEYS[7]) + redis.call('LLEN', KEYS[12]) > 0 then
  redis.call('ZADD', KEYS[8], now_s, 'm')
end
return out
