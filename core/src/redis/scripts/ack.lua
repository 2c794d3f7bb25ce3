-- ack: settle N >= 1 leased jobs of one queue as done, each only if the caller
-- still holds its lease (one call per batch: every write is one command for
-- the whole batch, except the kept results).
-- KEYS[1] jobs  KEYS[2] active  KEYS[3] lease  KEYS[4] att  KEYS[5] config
-- KEYS[6] gate state  KEYS[7] pending  KEYS[8] marker  KEYS[9] uud  KEYS[10] dl
-- KEYS[11] waiters  KEYS[12] ready  KEYS[13] lgroups
-- KEYS[14] rttl (kept results, _record.lua)
-- ARGV[1] the queue's key prefix "{runq:Q}:" (unique keys, finish notices
--         and the lists of kept results are built from it: all in the slot
--         of KEYS[1])
-- ARGV[2] 'k' | 'n', then groups of jobs leased with one token (one fetch
--         call's): TOKEN N and N jobs, each 'k': 4 ARGV (id, "|attempt|#result|"
--         of the kept value below, result (may be ''), result ttl ms: kept
--         when > 0) | 'n': the id alone (nothing kept, what a client keeping
--         no results sends). A token sent once per group, not per job, is
--         one string fewer per job to hand to Lua.
-- A job appears at most once per call (the engine settles a fetched job
-- once): a second copy would take it out of its lease group's count twice.
-- Returns one code per job, in order: 0 | -9 (stale: the lease was lost); or
-- that code alone when every job got it (the common case: no array).
local tag, kept = ARGV[1], ARGV[2] == 'k'
local w = kept and 4 or 1
-- at[i]: where job i's fields start in ARGV; tok[i]: its group's token
local ids, at, tok, n = {}, {}, {}, 0
local a, nargv = 3, #ARGV
while a <= nargv do
  local token, count = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, count do
    n = n + 1
    ids[n], at[n], tok[n] = ARGV[a], a, token
    a = a + w
  end
end
local leases = redis.call('HMGET', KEYS[3], unpack(ids))
-- ok: the jobs whose lease holds; own: those of them with an active entry of
-- their own; gtok[g], gcnt[g]: how many of the others each group loses;
-- keep: the ones whose result is kept (their index), gone: the others' ids
-- when some result is kept (otherwise ok is all of them).
local out, ok, keep, gone, nok, own, gtok, gcnt, ng = {}, {}, {}, {}, 0, {}, {}, {}, 0
local byte, find = string.byte, string.find
for i = 1, n do
  local lv, t = leases[i], tok[i]
  -- lease_token_ok, inlined: ack runs it for every job
  if lv and byte(lv, #t + 1) == 124 and find(lv, t, 1, true) == 1 then
    out[i] = 0
    nok = nok + 1
    ok[nok] = ids[i]
    if byte(lv, -1) == 120 then -- 'x': lease_own
      own[#own + 1] = ids[i]
    elseif gtok[ng] == t then
      gcnt[ng] = gcnt[ng] + 1
    else
      ng = ng + 1
      gtok[ng], gcnt[ng] = t, 1
    end
    if kept then
      local ttl = ARGV[at[i] + 3]
      if ttl ~= '0' and byte(ttl, 1) ~= 45 then -- 45: '-'
        keep[#keep + 1] = i
      else
        gone[#gone + 1] = ids[i]
      end
    end
  else
    out[i] = -9
  end
end
if nok == 0 then return -9 end
local now, now_s = now_ms()
-- att, dl, uud and waiters exist only while some job of the queue has an
-- attempt state, a deadline, a unique-until-done key or a waiter: one
-- EXISTS answers for the four in the common case.
local any = redis.call('EXISTS', KEYS[4], KEYS[10], KEYS[9], KEYS[11]) > 0
local has_att = any and redis.call('EXISTS', KEYS[4]) == 1
-- Kept results (see _record.lua): the job's field in jobs becomes
-- "4|expiry|finished|attempt|#result|#att|" .. result .. att .. record (att:
-- the attempt state of earlier attempts, '' if none); the ids kept with one
-- TTL are one entry of that TTL's list. The client sends the part it knows,
-- so that no number is formatted here but #att, which is 0 unless the job
-- ran before, and each distinct TTL's expiry, once per call. One HSET for
-- the whole batch and one RPUSH of one string per TTL: a key of its own per
-- result (SET ... PX) cost a command per job, and more memory than the
-- field the job has already.
if #keep > 0 then
  local kid, rset, lists, ttls = {}, {KEYS[1]}, {}, {KEYS[14]}
  for j, i in ipairs(keep) do kid[j] = ids[i] end
  local recs = redis.call('HMGET', KEYS[1], unpack(kid))
  local atts = has_att and redis.call('HMGET', KEYS[4], unpack(kid)) or {}
  for j, i in ipairs(keep) do
    local f = at[i]
    local att, ttl = atts[j] or '', ARGV[f + 3]
    local l = lists[ttl]
    if not l then
      l = {e = string.format('%d', now + tonumber(ttl)), key = tag .. 'rexp:' .. ttl}
      lists[ttl] = l
      ttls[#ttls + 1] = ttl
    end
    rset[2 * j], rset[2 * j + 1] = kid[j], '4|' .. l.e .. '|' .. now_s .. ARGV[f + 1] ..
      (att == '' and '0|' or string.format('%d|', #att)) .. ARGV[f + 2] .. att .. (recs[j] or '')
    l[#l + 1] = kid[j]
  end
  redis.call('HSET', unpack(rset))
  for _, l in pairs(lists) do redis.call('RPUSH', l.key, l.e .. '|' .. table.concat(l)) end
  redis.call('SADD', unpack(ttls))
  -- Results that expired go now, a few more than this call keeps, so that a
  -- backlog shrinks (an idle fetch sweeps too: fetch.lua).
  results_sweep(tag, KEYS[1], KEYS[14], now, 2 * #keep + 16)
end
lease_end(KEYS[2], KEYS[3], KEYS[13], ok, own, gtok, gcnt)
if not kept then gone = ok end
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
if has_att then redis.call('HDEL', KEYS[4], unpack(ok)) end
if any then
  if redis.call('EXISTS', KEYS[10]) == 1 then redis.call('ZREM', KEYS[10], unpack(ok)) end
  unique_release(tag, KEYS[9], ok)
  notify(tag, KEYS[11], ok, 'done')
end
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
if nok == n then return 0 end
return out
