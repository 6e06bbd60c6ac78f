package redis

import "github.com/redis/go-redis/v9"

// putItemsLua stores items whose key is free and lists the others. Item
// hash fields: g the stamp of the index pointer that the creating write
// made, d the immutable part (JSON), nb/nbt due time (microseconds, RFC
// 3339), st Since (RFC 3339; absent in items stored by a version without
// it), a attempts, h/lu/lut holder and lease end while held, e last error,
// b "1" once buried with bm the stamp of its dead-letter pointer.
const putItemsLua = `
local function putItems(first, p)
  local existed = {}
  for k = first, #KEYS do
    if redis.call('EXISTS', KEYS[k]) == 1 then
      existed[#existed + 1] = k - first
    else
      redis.call('HSET', KEYS[k], 'g', ARGV[p], 'nb', ARGV[p + 1], 'nbt', ARGV[p + 2], 'd', ARGV[p + 3], 'st', ARGV[p + 4], 'a', '0')
    end
    p = p + 5
  end
  return existed
end
`

// keepSinceLua gives an item stored by a version without Since the Since
// it reads with (its current due time), before a claim or retry stores
// the item again.
const keepSinceLua = `
local function keepSince()
  local nbt = redis.call('HGET', KEYS[1], 'nbt')
  if nbt then redis.call('HSETNX', KEYS[1], 'st', nbt) end
end
`

// enqueueScript: KEYS items; ARGV 5 per item (stamp, due µs, due text, data,
// Since text).
var enqueueScript = redis.NewScript(putItemsLua + `return putItems(1, 1)`)

// writeScript is Create and Update.
// KEYS: envelope, audit list, key set, items…
// ARGV: 1 mode (create|update), 2 version read, 3 version written, 4 data,
// 5 list key (create), 6/7 seq/hash of the head the records continue,
// 8/9 seq/hash of the new head, 10 audit count, 11 key count, then the
// audit records, the keys, 5 values per item.
var writeScript = redis.NewScript(putItemsLua + `
local env = KEYS[1]
local t = redis.call('TYPE', env)['ok']
if ARGV[1] == 'create' then
  if t ~= 'none' then
    if t ~= 'hash' then return {'exists', ''} end
    return {'exists', redis.call('HGET', env, 'ck') or ''}
  end
else
  if t == 'none' then return {'notfound'} end
  if t ~= 'hash' then return {'corrupt', 'the record is a ' .. t} end
  local cur = redis.call('HMGET', env, 'v', 'd', 'hs', 'hh')
  if not cur[1] or not string.match(cur[1], '^%d+$') then return {'corrupt', 'no version'} end
  if not cur[2] or not pcall(cjson.decode, cur[2]) then return {'corrupt', 'the envelope does not decode'} end
  if cur[1] ~= ARGV[2] then return {'conflict', cur[1]} end
  if cur[3] ~= ARGV[6] or cur[4] ~= ARGV[7] then return {'audit', cur[3] or ''} end
end
redis.call('HSET', env, 'v', ARGV[3], 'd', ARGV[4], 'hs', ARGV[8], 'hh', ARGV[9])
if ARGV[1] == 'create' then redis.call('HSET', env, 'ck', ARGV[5]) end
local p = 12
for i = 1, tonumber(ARGV[10]) do
  redis.call('RPUSH', KEYS[2], ARGV[p])
  p = p + 1
end
for i = 1, tonumber(ARGV[11]) do
  redis.call('SADD', KEYS[3], ARGV[p])
  p = p + 1
end
return {'ok', putItems(4, p)}
`)

// claimScript leases one item if it is still the one the pointer's stamp
// names, not buried, and due.
// KEYS: item. ARGV: stamp, now µs, holder, lease end µs, lease end text.
var claimScript = redis.NewScript(keepSinceLua + `
local f = redis.call('HMGET', KEYS[1], 'g', 'b', 'h', 'lu', 'nb')
if not f[1] then return {'missing'} end
if f[1] ~= ARGV[1] then return {'stale'} end
if f[2] == '1' then return {'buried'} end
local now = tonumber(ARGV[2])
if f[3] then
  local lu = tonumber(f[4])
  if not lu then return {'corrupt', 'lease end ' .. tostring(f[4])} end
  if lu > now then return {'held'} end
else
  local nb = tonumber(f[5])
  if not nb then return {'corrupt', 'due time ' .. tostring(f[5])} end
  if nb > now then return {'notdue'} end
end
keepSince()
redis.call('HINCRBY', KEYS[1], 'a', 1)
redis.call('HSET', KEYS[1], 'h', ARGV[3], 'lu', ARGV[4], 'lut', ARGV[5])
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// holderScript is Ack, Retry, Bury and Extend: it acts only for the claim
// that holds the item (holder and attempt count) and returns the item's
// stamp and data, to fix the indexes.
// KEYS: item. ARGV: holder, attempts, ack|retry|bury|extend, then for retry:
// due µs, due text, error; for bury: dead-letter stamp, reason; for extend:
// lease end µs, lease end text.
var holderScript = redis.NewScript(keepSinceLua + `
local f = redis.call('HMGET', KEYS[1], 'g', 'h', 'a', 'b', 'd')
if not f[1] then return {'gone'} end
if f[4] == '1' then return {'buried'} end
if f[2] ~= ARGV[1] or f[3] ~= ARGV[2] then return {'lost', f[2] or '', f[3] or ''} end
if ARGV[3] == 'ack' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == 'retry' then
  keepSince()
  redis.call('HDEL', KEYS[1], 'h', 'lu', 'lut')
  redis.call('HSET', KEYS[1], 'nb', ARGV[4], 'nbt', ARGV[5], 'e', ARGV[6])
elseif ARGV[3] == 'bury' then
  redis.call('HDEL', KEYS[1], 'h', 'lu', 'lut')
  redis.call('HSET', KEYS[1], 'b', '1', 'bm', ARGV[4], 'e', ARGV[5])
elseif ARGV[3] == 'extend' then
  redis.call('HSET', KEYS[1], 'lu', ARGV[4], 'lut', ARGV[5])
else
  return redis.error_reply('holder script: unknown operation ' .. ARGV[3])
end
return {'ok', f[1], f[5]}
`)

// acquireScript takes a named lease if free, expired or the holder's.
// KEYS: lease. ARGV: holder, now µs, end µs.
var acquireScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'h', 'u')
if f[1] and f[1] ~= ARGV[1] then
  local u = tonumber(f[2])
  if u and u > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'u', ARGV[3])
return 1
`)

// releaseLeaseScript frees a named lease if the holder holds it.
var releaseLeaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'h') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)
