/**
 * The scripts of `untold.ts` (apart, so `scripts.ts` can list them without importing their user).
 * An untold end is a member of the untold set (the run id, scored by Redis's time in ms) and a
 * field of its hash: `outcome \t failStreak \t endedStreak \t job \t host \t recorded \t first`,
 * where `host` is the host that holds it (`incarnation`), `recorded` the statuses of the run's
 * notifications already recorded under it (each followed by a comma) and `first` when the end
 * marked it (ms, Redis's time; the score moves to the time of each take). `jhFold` writes it, the
 * notification's record (`jhAddNotification`) checks and extends it, and these take and drop it.
 */

/** Splits an end's field into its seven parts (nil when it is not one). */
const PARSE = `
local function parse(data)
  if not data then return nil end
  return string.match(data, '^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)$')
end`;

/**
 * Takes the due marks. KEYS: the untold set, its hash. ARGV: MIN_AGE_MS, GRACE_MS, the most to
 * take, MAX_AGE_MS, this host, where to start among the due marks (an offset: marks no host here
 * can take must not hide the newer ones), how many live hosts follow, the live hosts, then the
 * jobs this host can tell. Looks at up to 10 times the most to take of the marks at least
 * MIN_AGE_MS old, oldest first from the offset, and takes those of a job this host can tell whose
 * host is no longer live, or that are GRACE_MS old (its own too: their telling here failed, or
 * still goes on, which `untold.ts` tells apart): each is moved to this host with Redis's time now
 * (another host takes it after GRACE_MS only, or once this host is gone). A mark first made more
 * than MAX_AGE_MS ago (no host that has its job told it) or unreadable is dropped. Returns how
 * many marks it looked at, then (run id, outcome, failStreak, endedStreak, recorded) per mark
 * taken; outcome `''` for a mark dropped.
 */
const TAKE_UNTOLD = `${PARSE}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live, jobs = {}, {}
local hosts = tonumber(ARGV[7])
for i = 8, 7 + hosts do live[ARGV[i]] = true end
for i = 8 + hosts, #ARGV do jobs[ARGV[i]] = true end
local most = tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'WITHSCORES', 'LIMIT', tonumber(ARGV[6]), most * 10)
local out, taken = {#due / 2}, 0
for i = 1, #due, 2 do
  if taken >= most then break end
  local id, at = due[i], tonumber(due[i + 1])
  local outcome, fail, ended, job, host, recorded, first = parse(redis.call('HGET', KEYS[2], id))
  if not outcome or now - tonumber(first) > tonumber(ARGV[4]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    out[#out + 1] = id
    out[#out + 1] = ''
    out[#out + 1] = outcome and 'old' or 'unreadable'
    out[#out + 1] = ''
    out[#out + 1] = ''
  elseif jobs[job] and (now - at >= tonumber(ARGV[2]) or not live[host]) then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('HSET', KEYS[2], id, table.concat({outcome, fail, ended, job, ARGV[5], recorded, first}, '\\t'))
    taken = taken + 1
    out[#out + 1] = id
    out[#out + 1] = outcome
    out[#out + 1] = fail
    out[#out + 1] = ended
    out[#out + 1] = recorded
  end
end
return out`;

/** Drops the marks of ends told that this host still holds (another may have taken one). KEYS: the set, its hash. ARGV: this host, the run ids. */
const DROP_UNTOLD = `${PARSE}
for i = 2, #ARGV do
  local _, _, _, _, host = parse(redis.call('HGET', KEYS[2], ARGV[i]))
  if host == ARGV[1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return 1`;

/**
 * The check a notification's record makes (inside `jhAddNotification`): recorded only while this
 * host holds the end's mark (`fence`: the run id, this host, the status), which then notes its
 * status; a mark gone or taken by another host (which tells the end) stops it. KEYS[4] is the hash.
 */
export const UNTOLD_FENCE = `${PARSE}
local function fenced(run, me, status)
  if run == '' then return false end
  local outcome, fail, ended, job, host, recorded, first = parse(redis.call('HGET', KEYS[4], run))
  if host ~= me then return true end
  redis.call('HSET', KEYS[4], run, table.concat({outcome, fail, ended, job, host, recorded .. status .. ',', first}, '\\t'))
  return false
end`;

export const UNTOLD_SCRIPTS = {
  jhTakeUntold: { keys: 2, lua: TAKE_UNTOLD },
  jhDropUntold: { keys: 2, lua: DROP_UNTOLD },
} as const;

export interface UntoldCommands {
  jhTakeUntold(
    set: string,
    ends: string,
    minAge: string,
    grace: string,
    most: string,
    maxAge: string,
    host: string,
    ...liveThenJobs: string[]
  ): Promise<string[]>;
  jhDropUntold(set: string, ends: string, host: string, ...runs: string[]): Promise<number>;
}
