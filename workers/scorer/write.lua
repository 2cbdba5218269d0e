-- write.lua: the writes of units (an account's, or a lead's without
-- account), run by EVALSHA, so that Redis receives each changed value once
-- and not its field name and framing.  The worker loads it (SCRIPT LOAD)
-- on every connection; its SHA-1 is compiled into the worker.  It runs
-- atomically, as the MULTI/EXEC per unit it replaces did: every key a unit
-- writes is its KEYS[u] or KEYS[u] followed by a suffix, so shares its
-- hash tag.  On a Redis Cluster a run holds one unit (one slot); on one
-- Redis server it may hold several.  It writes the same hashes and sets,
-- field for field and in the same order, as those transactions did
-- (README, "Redis layout").
--
-- KEYS[u]    unit u's hash: <prefix>{acct:A} or <prefix>{lead:L}; on a
--            Redis Cluster (one unit per run), the rest of KEYS: every
--            other key the run writes, so that Redis refuses the whole run
--            while one of them is on another node during a slot migration
--            (a script stopped at its first such key would leave the
--            writes before it in place)
-- ARGV[1]    the program: operations, each a byte and big-endian fields
--            (struct's formats below; c0 is a string of the length before
--            it), unit 1's first
-- ARGV[1+u]  unit u's account id (a lead's account_id field)
--
--   U  the operations after it are the next unit's
--   L  a lead: id, mask, then its values of confront, connect, mobilizer,
--      tier, top_insight, furthest_stage, reasons, as_of, events_applied,
--      state, checkpoint (empty where the mask leaves them out); W the
--      same with 4-byte lengths where L has 2 (top_insight, reasons,
--      state).  Mask: 1 lead_id and account_id, 2 confront, connect and
--      mobilizer, 4 tier, top_insight and furthest_stage, 8 reasons, 16
--      as_of and events_applied, 32 state, 64 checkpoint (the fields are
--      written in this order); 128 a new member of KEYS[u]:leads; 256 the
--      lead's hash is KEYS[u] (a lead without account), else
--      KEYS[u]:lead:<id>.  Bits are tested with % (no bit calls: this runs
--      for every lead written)
--   F, G, P, Q, Z  a lead of an account written with one of the masks most
--      writes have, its id then only the values the mask has, in the same
--      order and with L's lengths: F 191 (a new member, every field but
--      the checkpoint), G 63 (the same, not a new member), P 58 (points,
--      reasons, progress, state), Q 48 (progress, state), Z 32 (state: a
--      colleague credited, no event of its own).  They run without a mask
--      or a table: most of the script's time is spent on leads
--   A  the account's hash: flag, state, checkpoint, as_of, and when flag
--      is 1 engaged_stakeholders, confronted_stakeholders, consensus,
--      top_insight and mobilizers (written after account_id); the new
--      members of its lead set first
--   D  dictionary entries: the first's index, a count, then their texts
--   S  insight sums: a count, then index and value each (empty: HDEL)
--   T  a webinar's attendance: content id, lead id, value (empty: HDEL)
--   M  the mobilizer set: 1 (SADD) or 0 (SREM), lead id
--   I  a lead's dedupe ids kept apart: flags (1 whole: DEL first; 2 the
--      unit is a lead without account: its hash of ids is KEYS[u]:seen,
--      else KEYS[u]:seen:<id>), lead id, count, then each id's 8-byte hash
--      and time (empty: HDEL); with flag 4, its repeats and shares kept
--      apart instead (:mem in place of :seen), each field's name with a
--      2-byte length
--   X  HDEL of the single-blob layout's blob field
local s, unit = ARGV[1], 1
local base, account = KEYS[1], ARGV[2]
local unpack_, byte, call, tostring = struct.unpack, string.byte, redis.call, tostring
local LEAD = '>Hc0HBc0Bc0Bc0Bc0Hc0Bc0Hc0Bc0Bc0Hc0Bc0'
local LEAD_ALL = '>Hc0Bc0Bc0Bc0Bc0Hc0Bc0Hc0Bc0Bc0Hc0'
local LEAD_WIDE = '>Hc0HBc0Bc0Bc0Bc0I4c0Bc0I4c0Bc0Bc0I4c0Bc0'
local CHUNK = 512 -- arguments per command: unpack() is bounded by Lua's stack
local a, k = {}, 0 -- the arguments of the command being built
local function put(name, v)
  a[k + 1] = name
  a[k + 2] = v
  k = k + 2
end
-- cmd key a[1..k], in commands of at most CHUNK arguments (pairs kept whole)
local function flush(cmd, key)
  for i = 1, k, CHUNK do
    call(cmd, key, unpack(a, i, math.min(i + CHUNK - 1, k)))
  end
  k = 0
end
local members, nmembers = {}, 0
local p, n = 1, #s
-- count pairs of format fmt (a field, then a value) from p on: an HSET of
-- key with those that have a value, then an HDEL of the others' fields;
-- a field goes through tostring when `text`
local function set_or_del(key, count, fmt, text)
  local dels, ndels = {}, 0
  for _ = 1, count do
    local f, v
    f, v, p = unpack_(fmt, s, p)
    if text then f = tostring(f) end
    if v == '' then
      ndels = ndels + 1
      dels[ndels] = f
    else
      put(f, v)
    end
  end
  flush('HSET', key)
  for i = 1, ndels, CHUNK do
    call('HDEL', key, unpack(dels, i, math.min(i + CHUNK - 1, ndels)))
  end
end
while p <= n do
  local op = byte(s, p)
  p = p + 1
  k = 0
  if op == 70 or op == 71 then -- F, G: every field but the checkpoint
    local id, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, np = unpack_(LEAD_ALL, s, p)
    p = np
    call('HSET', base .. ':lead:' .. id, 'lead_id', id, 'account_id', account, 'confront', v1,
         'connect', v2, 'mobilizer', v3, 'tier', v4, 'top_insight', v5, 'furthest_stage', v6,
         'reasons', v7, 'as_of', v8, 'events_applied', v9, 'state', v10)
    if op == 70 then
      nmembers = nmembers + 1
      members[nmembers] = id
    end
  elseif op == 80 then -- P: points, reasons, progress, state
    local id, v1, v2, v3, v7, v8, v9, v10, np = unpack_('>Hc0Bc0Bc0Bc0Hc0Bc0Bc0Hc0', s, p)
    p = np
    call('HSET', base .. ':lead:' .. id, 'confront', v1, 'connect', v2, 'mobilizer', v3,
         'reasons', v7, 'as_of', v8, 'events_applied', v9, 'state', v10)
  elseif op == 81 then -- Q: progress, state
    local id, v8, v9, v10, np = unpack_('>Hc0Bc0Bc0Hc0', s, p)
    p = np
    call('HSET', base .. ':lead:' .. id, 'as_of', v8, 'events_applied', v9, 'state', v10)
  elseif op == 90 then -- Z: state
    local id, v10, np = unpack_('>Hc0Hc0', s, p)
    p = np
    call('HSET', base .. ':lead:' .. id, 'state', v10)
  elseif op == 76 or op == 87 then -- L, W
    local id, mask, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, np =
      unpack_(op == 76 and LEAD or LEAD_WIDE, s, p)
    p = np
    if mask % 2 == 1 then
      a[1], a[2], a[3], a[4], k = 'lead_id', id, 'account_id', account, 4
    end
    if mask % 4 >= 2 then
      a[k + 1], a[k + 2], a[k + 3], a[k + 4], a[k + 5], a[k + 6], k =
        'confront', v1, 'connect', v2, 'mobilizer', v3, k + 6
    end
    if mask % 8 >= 4 then
      a[k + 1], a[k + 2], a[k + 3], a[k + 4], a[k + 5], a[k + 6], k =
        'tier', v4, 'top_insight', v5, 'furthest_stage', v6, k + 6
    end
    if mask % 16 >= 8 then a[k + 1], a[k + 2], k = 'reasons', v7, k + 2 end
    if mask % 32 >= 16 then
      a[k + 1], a[k + 2], a[k + 3], a[k + 4], k = 'as_of', v8, 'events_applied', v9, k + 4
    end
    if mask % 64 >= 32 then a[k + 1], a[k + 2], k = 'state', v10, k + 2 end
    if mask % 128 >= 64 then a[k + 1], a[k + 2], k = 'checkpoint', v11, k + 2 end
    call('HSET', mask >= 256 and base or base .. ':lead:' .. id, unpack(a, 1, k))
    k = 0
    if mask % 256 >= 128 then
      nmembers = nmembers + 1
      members[nmembers] = id
    end
  elseif op == 65 then -- A
    local flag, state, ckpt, as_of, np = unpack_('>BI4c0Bc0Bc0', s, p)
    p = np
    if nmembers > 0 then
      for i = 1, nmembers, CHUNK do
        call('SADD', base .. ':leads', unpack(members, i, math.min(i + CHUNK - 1, nmembers)))
      end
      nmembers = 0
    end
    if flag == 1 then
      local engaged, confronted, consensus, top, mobilizers, np2 =
        unpack_('>Bc0Bc0Bc0I4c0I4c0', s, p)
      p = np2
      call('HSET', base, 'state', state, 'checkpoint', ckpt, 'as_of', as_of, 'account_id', account,
           'engaged_stakeholders', engaged, 'confronted_stakeholders', confronted,
           'consensus', consensus, 'top_insight', top, 'mobilizers', mobilizers)
    else
      call('HSET', base, 'state', state, 'checkpoint', ckpt, 'as_of', as_of)
    end
  elseif op == 68 then -- D
    local first, count, np = unpack_('>I4H', s, p)
    p = np
    for i = 0, count - 1 do
      local v
      v, p = unpack_('>I4c0', s, p)
      put(tostring(first + i), v)
    end
    flush('HSET', base .. ':dict')
  elseif op == 83 then -- S
    local count, np = unpack_('>H', s, p)
    p = np
    set_or_del(base .. ':sums', count, '>I4I4c0', true)
  elseif op == 84 then -- T
    local content, lead, v, np = unpack_('>Hc0Hc0I4c0', s, p)
    p = np
    if v == '' then
      call('HDEL', base .. ':att:' .. content, lead)
    else
      call('HSET', base .. ':att:' .. content, lead, v)
    end
  elseif op == 77 then -- M
    local add, lead, np = unpack_('>BHc0', s, p)
    p = np
    call(add == 1 and 'SADD' or 'SREM', base .. ':mobilizers', lead)
  elseif op == 73 then -- I
    local flags, id, count, np = unpack_('>BHc0I4', s, p)
    p = np
    local mem = flags >= 4
    local sfx = mem and ':mem' or ':seen'
    local key = flags % 4 >= 2 and base .. sfx or base .. sfx .. ':' .. id
    if flags % 2 == 1 then call('DEL', key) end
    set_or_del(key, count, mem and '>Hc0Bc0' or '>c8Bc0', false)
  elseif op == 88 then -- X
    call('HDEL', base, 'blob')
  elseif op == 85 then -- U
    unit = unit + 1
    base, account = KEYS[unit], ARGV[unit + 1]
    nmembers = 0 -- a unit's new members go to its own lead set only
  else
    return redis.error_reply('ERR dealsignal write: unknown operation at byte ' .. (p - 1))
  end
end
return 1
