/**
 * The Lua scripts that keep notifications and the state of their deliveries (see
 * `notification-records.ts` for the layout). Each runs atomically, so updating one delivery never
 * loses a concurrent update of another delivery of the same notification (each is its own hash
 * field), and an attempt that ends after a redeliver started a new series records nothing (its
 * series no longer matches). Each touches only the keys in its KEYS: an add names the old
 * notifications past the kept ones, and the caller hands their hashes to TRIM, which checks
 * again that each is still past them.
 */

import { UNTOLD_FENCE } from './untold-scripts.js';

/**
 * Records a notification unless it exists (a repeated add changes nothing), then names the
 * oldest entries of the index past `kept` (at most the trim budget) for TRIM: entries of the
 * older `<id>\t<json>` form, which have no hash, are dropped here at once. KEYS: its hash, the
 * index, the set of open deliveries, the untold ends (`untold-scripts.ts`). ARGV: id,
 * notification JSON, job, kept, trim budget, the fence of a run's end (run id, this host, the
 * status; the run id '' for none: see UNTOLD_FENCE), then (delivery id, delivery JSON, series,
 * open 1/0) per delivery. Returns {1, ids to trim...} when recorded, {0} when it was there
 * already, {-1} when the fence stopped it (another host tells the end).
 */
const ADD = `${UNTOLD_FENCE}
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
if fenced(ARGV[6], ARGV[7], ARGV[8]) then return {-1} end
local fields = {'n', ARGV[2], 'job', ARGV[3], 'seq', '0'}
local open = 0
for i = 9, #ARGV, 4 do
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
local out = {1}
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, math.min(excess, tonumber(ARGV[5])) - 1)) do
    if string.find(m, '\t', 1, true) then redis.call('ZREM', KEYS[2], m) else out[#out + 1] = m end
  end
end
return out`;

/**
 * Drops old notifications that have no open delivery, each only if it is still past the newest
 * `kept` of the index. KEYS: the index, then each notification's hash. ARGV: kept, then the ids.
 * Returns how many were dropped.
 */
const TRIM = `
local dropped = 0
for i = 2, #ARGV do
  local rank = redis.call('ZRANK', KEYS[1], ARGV[i])
  if rank and rank < redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1]) and tonumber(redis.call('HGET', KEYS[i], 'open') or '0') == 0 then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
    dropped = dropped + 1
  end
end
return dropped`;

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

/** The scripts, as ioredis commands on a connection (a MULTI made from it has them too). */
export interface DeliveryCommands {
  jhAddNotification(hash: string, index: string, open: string, untold: string, ...args: string[]): Promise<[number, ...string[]]>;
  jhTrimNotifications(numKeys: number, ...keysThenArgs: string[]): Promise<number>;
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
}

export const DELIVERY_SCRIPTS = {
  jhAddNotification: { keys: 4, lua: ADD },
  jhTrimNotifications: { keys: undefined, lua: TRIM },
  jhUpdateDelivery: { keys: 4, lua: UPDATE },
  jhRedeliver: { keys: 2, lua: REDELIVER },
};
