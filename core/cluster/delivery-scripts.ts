import type { Redis } from 'ioredis';

/**
 * The Lua scripts that keep notifications and the state of their deliveries (see
 * `notification-records.ts` for the layout). Each runs atomically, so updating one delivery never
 * loses a concurrent update of another delivery of the same notification (each is its own hash
 * field), and an attempt that ends after a redeliver started a new series records nothing (its
 * series no longer matches). Trimming derives the hashes of old notifications from the prefix,
 * like the history scripts do (fine on one Redis, not Redis Cluster).
 */

/**
 * Records a notification unless it exists (a repeated add changes nothing), then trims the index
 * to `kept`, skipping notifications with open deliveries (they go once their last one ends).
 * KEYS: its hash, the index, the set of open deliveries. ARGV: id, notification JSON, job,
 * kept, trim budget, hash key prefix, then (delivery id, delivery JSON, series, open 1/0) per
 * delivery. Returns 1 when recorded, 0 when it was there already.
 */
const ADD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {'n', ARGV[2], 'job', ARGV[3], 'seq', '0'}
local open = 0
for i = 7, #ARGV, 4 do
  local d = ARGV[i]
  fields[#fields + 1] = 'd:' .. d
  fields[#fields + 1] = ARGV[i + 1]
  fields[#fields + 1] = 's:' .. d
  fields[#fields + 1] = ARGV[i + 2]
  fields[#fields + 1] = 'o:' .. d
  fields[#fields + 1] = ARGV[i + 3]
  if ARGV[i + 3] == '1' then
    open = open + 1
    redis.call('SADD', KEYS[3], d)
  end
end
fields[#fields + 1] = 'open'
fields[#fields + 1] = tostring(open)
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, math.min(excess, tonumber(ARGV[5])) - 1)
  for _, m in ipairs(oldest) do
    if string.find(m, '\t', 1, true) then
      redis.call('ZREM', KEYS[2], m)
    else
      local h = ARGV[6] .. m
      if tonumber(redis.call('HGET', h, 'open') or '0') == 0 then
        redis.call('DEL', h)
        redis.call('ZREM', KEYS[2], m)
      end
    end
  end
end
return 1`;

/**
 * Records a delivery's new state if its series is still `series` and, with a token, the attempt's
 * BullMQ job is still held with it (a host cut off from Redis past the lock records nothing once
 * back: the host that took the job over made the attempt again). KEYS: the notification's hash,
 * the index, the set of open deliveries, the job's lock. ARGV: notification id, delivery id,
 * series, delivery JSON, open (1/0), kept, token ('' for none). Returns the hash (HGETALL) after
 * the write, or nil when the notification is gone, a redeliver started another series or the
 * lock is not the token's. A notification past the kept ones whose last open delivery ended here
 * is dropped.
 */
const UPDATE = `
if redis.call('HGET', KEYS[1], 's:' .. ARGV[2]) ~= ARGV[3] then return false end
if ARGV[7] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[7] then return false end
local was = redis.call('HGET', KEYS[1], 'o:' .. ARGV[2])
redis.call('HSET', KEYS[1], 'd:' .. ARGV[2], ARGV[4], 'o:' .. ARGV[2], ARGV[5])
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
if was == '1' and ARGV[5] == '0' then
  open = redis.call('HINCRBY', KEYS[1], 'open', -1)
  redis.call('SREM', KEYS[3], ARGV[2])
elseif was ~= '1' and ARGV[5] == '1' then
  open = redis.call('HINCRBY', KEYS[1], 'open', 1)
  redis.call('SADD', KEYS[3], ARGV[2])
end
local all = redis.call('HGETALL', KEYS[1])
if open <= 0 then
  local rank = redis.call('ZREVRANK', KEYS[2], ARGV[1])
  if not rank or rank >= tonumber(ARGV[6]) then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
end
return all`;

/**
 * Starts a new series for some deliveries: each gets the new series and its pending state.
 * KEYS: the notification's hash, the set of open deliveries. ARGV: series, then (delivery id,
 * delivery JSON) pairs. Returns the hash after the write, or nil when the notification is gone.
 */
const REDELIVER = `
if redis.call('HEXISTS', KEYS[1], 'n') == 0 then
  -- Gone since it was read (its series counter alone may have been made since).
  redis.call('DEL', KEYS[1])
  return false
end
for i = 2, #ARGV, 2 do
  local d = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], 'd:' .. d) == 1 then
    if redis.call('HGET', KEYS[1], 'o:' .. d) ~= '1' then
      redis.call('HINCRBY', KEYS[1], 'open', 1)
      redis.call('SADD', KEYS[2], d)
    end
    redis.call('HSET', KEYS[1], 'd:' .. d, ARGV[i + 1], 's:' .. d, ARGV[1], 'o:' .. d, '1')
  end
end
return redis.call('HGETALL', KEYS[1])`;

/**
 * Notifications, newest first: the index is a sorted set of ids (all scores 0, so ids order it,
 * and ids sort by time whichever host minted them, as `before` needs). KEYS: the index. ARGV:
 * limit, before (an id, or ''), job (or ''), hash key prefix. Returns {items, more}: each item is
 * a notification's hash (HGETALL), or {'L', json} for an entry of the older `<id>\t<json>` form.
 */
const LIST = `
local limit, job = tonumber(ARGV[1]), ARGV[3]
local maxb = '+'
if ARGV[2] ~= '' then maxb = '(' .. ARGV[2] end
local out, more = {}, 0
while more == 0 do
  local chunk = redis.call('ZREVRANGEBYLEX', KEYS[1], maxb, '-', 'LIMIT', 0, 100)
  if #chunk == 0 then break end
  for _, m in ipairs(chunk) do
    maxb = '(' .. m
    local item = nil
    local tab = string.find(m, '\t', 1, true)
    if tab then
      local json = string.sub(m, tab + 1)
      local ok, n = pcall(cjson.decode, json)
      if ok and type(n) == 'table' and (job == '' or n['job'] == job) then item = {'L', json} end
    else
      local h = ARGV[4] .. m
      if job == '' or redis.call('HGET', h, 'job') == job then
        local all = redis.call('HGETALL', h)
        if #all > 0 then item = all end
      end
    end
    if item then
      if #out == limit then more = 1 break end
      out[#out + 1] = item
    end
  end
end
return {out, more}`;

/** The scripts, as ioredis commands on a connection (a MULTI made from it has them too). */
export interface DeliveryCommands {
  jhAddNotification(hash: string, index: string, open: string, ...args: string[]): Promise<number>;
  jhUpdateDelivery(
    hash: string,
    index: string,
    open: string,
    lock: string,
    id: string,
    deliveryId: string,
    series: string,
    json: string,
    isOpen: string,
    kept: string,
    token: string,
  ): Promise<string[] | null>;
  jhRedeliver(hash: string, open: string, series: string, ...pairs: string[]): Promise<string[] | null>;
  jhNotifications(index: string, limit: string, before: string, job: string, hashPrefix: string): Promise<[string[][], number]>;
}

/** Defines the delivery scripts on a connection (EVALSHA, loaded on first use per connection). */
export function defineDeliveryScripts(redis: Redis): void {
  redis.defineCommand('jhAddNotification', { numberOfKeys: 3, lua: ADD });
  redis.defineCommand('jhUpdateDelivery', { numberOfKeys: 4, lua: UPDATE });
  redis.defineCommand('jhRedeliver', { numberOfKeys: 2, lua: REDELIVER });
  redis.defineCommand('jhNotifications', { numberOfKeys: 1, lua: LIST });
}
