/** The script of `untold.ts` (apart, so `scripts.ts` can list it without importing its user). */

/**
 * Takes the due marks. KEYS: the untold set, its hash of ends. ARGV: MIN_AGE_MS, GRACE_MS, limit,
 * MAX_AGE_MS, this host, then the live hosts. A mark taken is moved to this host with Redis's time
 * now (another host takes it after GRACE_MS only, or once this host is gone). Returns a flat list
 * of (run id, outcome, failStreak, endedStreak) per mark taken; outcome `''` for a mark dropped
 * (too old, or its end unreadable).
 */
const TAKE_UNTOLD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = {}
for i = 6, #ARGV do live[ARGV[i]] = true end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local id, at = due[i], tonumber(due[i + 1])
  local data = redis.call('HGET', KEYS[2], id)
  local outcome, fail, ended, host
  if data then outcome, fail, ended, host = string.match(data, '^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t(.*)$') end
  if not outcome or now - at > tonumber(ARGV[4]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    out[#out + 1] = id
    out[#out + 1] = ''
    out[#out + 1] = ''
    out[#out + 1] = ''
  elseif now - at >= tonumber(ARGV[2]) or not live[host] then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('HSET', KEYS[2], id, outcome .. '\\t' .. fail .. '\\t' .. ended .. '\\t' .. ARGV[5])
    out[#out + 1] = id
    out[#out + 1] = outcome
    out[#out + 1] = fail
    out[#out + 1] = ended
  end
end
return out`;

export const UNTOLD_SCRIPTS = { jhTakeUntold: { keys: 2, lua: TAKE_UNTOLD } } as const;

export interface UntoldCommands {
  jhTakeUntold(set: string, ends: string, minAge: string, grace: string, limit: string, maxAge: string, host: string, ...live: string[]): Promise<string[]>;
}
