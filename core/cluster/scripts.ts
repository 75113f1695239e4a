import type { Redis } from 'ioredis';
import { AFTER_SCRIPTS } from './after-scripts.js';
import { AUDIT_SCRIPTS } from './audit-records.js';
import { JOB_FIELD as F } from './bullmq-internals.js';
import { DELIVERY_SCRIPTS, type DeliveryCommands } from './delivery-scripts.js';
import { HISTORY_SCRIPTS, type HistoryCommands } from './history-scripts.js';
import { DEBOUNCE_SCRIPTS } from './limits-debounce.js';
import { OWNED_WRITE_SCRIPTS, type OwnedWriteCommands } from './owned-writes.js';
import { STATE_SCRIPTS, type StateCommands } from './state-scripts.js';
import { UNTOLD_SCRIPTS, type UntoldCommands } from './untold-scripts.js';

/**
 * jobhost's own Lua scripts, next to BullMQ's. Each runs atomically in Redis; together with
 * BullMQ's add script inside one MULTI they make admission and the add one step. Every script
 * touches only the keys it is given in KEYS (test/core/cluster/lua-keys.test.ts checks each
 * one): where the keys come from data (an index entry names its run and job), the caller reads
 * the data first and the script checks again what it relies on. BullMQ's field names come from
 * `bullmq-internals.ts`.
 */

/** A script as ioredis defines it: `keys` fixed, or `undefined` when the caller passes their number first. */
export interface LuaScript {
  keys: number | undefined;
  lua: string;
}

/**
 * Admission, before BullMQ's add in the same MULTI; the caller passes the number of keys first.
 * KEYS: the job's state hash, the new run's job hash. ARGV: once (1/0), cooldown ms, enabled by
 * config (1/0), and for a schedule fire its time and the `lastFireAt` to record ('' otherwise). A fire at or before `lastFireAt` was made by
 * another host: refused `fired` (checked first and recorded at once, so exactly one host goes on
 * to the other rules and reports their refusal). A refusal marks the run's job hash so BullMQ's
 * add that follows adds nothing (an existing hash: a fire's run another host added) and
 * `ADMITTED` removes the mark. Times come from Redis (TIME), one clock for every host.
 *
 * With five keys it also does ADMITTED's work, for a run without a deduplication id (issue 26:
 * two scripts per add instead of three). Without a dedup id or a parent, BullMQ's add script has
 * one outcome besides adding, a job hash already there left as it is (`handleDuplicatedJob`), so
 * whether the run is added is known before the add. KEYS 3–5: the global index, the job's index,
 * the cluster stream; ARGV 6–10: the index member, the stream length, and the run's `run.queued`
 * (host, at, data). Admitted: indexed and its `run.queued` appended, as ADMITTED does once the add
 * went through (or found the hash there). Refused: a run with no hash yet gets a placeholder, so
 * BullMQ's add adds nothing, and the placeholder expires by itself after REFUSED_TTL_MS (long past
 * the MULTI that holds it) instead of ADMITTED's DEL, which would be a third script; a hash there
 * already is left untouched.
 */
const REFUSED_TTL_MS = 10_000;
const ADMIT = `
local refused = nil
if ARGV[4] ~= '' then
  local last = redis.call('HGET', KEYS[1], 'lastFireAt')
  if last and tonumber(last) >= tonumber(ARGV[4]) then
    refused = {'fired', last}
  else
    redis.call('HSET', KEYS[1], 'lastFireAt', ARGV[5])
  end
end
if not refused then
  local st = redis.call('HMGET', KEYS[1], 'enabled', 'lastSuccessAt', 'succeededRun')
  if st[1] == '0' or (st[1] ~= '1' and ARGV[3] == '0') then
    refused = {'disabled', ''}
  elseif ARGV[1] == '1' and st[3] then
    refused = {'once', st[3]}
  elseif tonumber(ARGV[2]) > 0 and st[2] then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local untilMs = tonumber(st[2]) + tonumber(ARGV[2])
    if now < untilMs then refused = {'cooldown', string.format('%.0f', untilMs)} end
  end
end
if #KEYS == 2 then
  if refused then
    if redis.call('EXISTS', KEYS[2]) == 1 then
      redis.call('HSET', KEYS[2], '__jh_refused_kept', '1')
    else
      redis.call('HSET', KEYS[2], '__jh_refused', '1')
    end
    return refused
  end
  return {'ok', ''}
end
if refused then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HSET', KEYS[2], '__jh_refused', '1')
    redis.call('PEXPIRE', KEYS[2], ${REFUSED_TTL_MS})
  end
  return refused
end
redis.call('ZADD', KEYS[3], 0, ARGV[6])
redis.call('ZADD', KEYS[4], 0, ARGV[6])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*', 'event', 'host.event', 'host', ARGV[8], 'type', 'run.queued', 'at', ARGV[9], 'data', ARGV[10])
return {'ok', ''}`;

/**
 * Raises a time field of a job's state (`lastFireAt`, `missedThrough`) unless a later one is
 * there: it only grows. KEYS: state. ARGV: field, ms. Returns 1 when this call raised it.
 */
const RAISE = `
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

/**
 * Storm control (`Backend.throttle`): opens the window of a key when none is open, and answers what
 * the windows before held that no digest took (HGETALL, cleared: the opener's message tells them;
 * usually nothing), else counts the status as held back and answers {ms left in the window}.
 * KEYS: the window, the held counts. ARGV: window ms, status. The counts outlive the window by an
 * hour at most (a digest takes them at its end).
 */
const THROTTLE = `
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then
  local held = redis.call('HGETALL', KEYS[2])
  redis.call('DEL', KEYS[2])
  return held
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]) + 3600000)
return {math.max(redis.call('PTTL', KEYS[1]), 0)}`;

/**
 * What was held back in a window that has ended, cleared (a digest's take). KEYS: the held counts,
 * the window. Returns HGETALL, or {PTTL} while the window is still open: the counts are then the
 * open window's, which its own digest takes at its end (a host late to an ended window's digest
 * must not take the next window's first counts).
 */
const TAKE_ENDED = `
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {left} end
local held = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return held`;

/**
 * The `slow` rule's claim on a run (`Backend.claimSlow`): a mark on its BullMQ job hash, so it
 * goes with the run. KEYS: the job hash. Returns 1 when this call set it (or the run is gone).
 */
const SLOW_MARK = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
return redis.call('HSETNX', KEYS[1], 'jhSlow', '1')`;

/** What was held back under a key, cleared. KEYS: the held counts. Returns HGETALL. */
const TAKE_HELD = `
local held = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return held`;

/**
 * After BullMQ's add, in the same MULTI. KEYS: the run's job hash, the global index, the job's
 * index, the cluster stream, the dedup key (the job hash again when the run has none). ARGV: the
 * index member, whether there is a dedup key (1/0), and the run's `run.queued` for the other hosts
 * (stream length, host, at, data JSON). Returns {1} when the run was added (and indexes it and
 * appends its `run.queued` to the cluster stream, ahead of anything a host that starts it can
 * append), {0} when ADMIT refused it (and drops the placeholder), or {2, holder} when BullMQ's
 * deduplication kept another run (its id; '' when none holds the key by now).
 */
const ADMITTED = `
if redis.call('HEXISTS', KEYS[1], '__jh_refused_kept') == 1 then
  redis.call('HDEL', KEYS[1], '__jh_refused_kept')
  return {0}
end
if redis.call('HEXISTS', KEYS[1], '__jh_refused') == 1 then
  redis.call('DEL', KEYS[1])
  return {0}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local holder = ''
  if ARGV[2] == '1' then holder = redis.call('GET', KEYS[5]) or '' end
  return {2, holder}
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'event', 'host.event', 'host', ARGV[4], 'type', 'run.queued', 'at', ARGV[5], 'data', ARGV[6])
return {1}`;

/**
 * The alert rules' failure streak, folded in the MULTI that holds BullMQ's moveToFinished (see
 * JobQueue): the run's end and its count are one step, whichever host ends it. KEYS: the job's
 * state, the run's job hash, the finished set BullMQ moved it to, the untold ends (a sorted set
 * and its hash, `untold.ts`). ARGV: run id, outcome (`succeeded`, `failed`, `canceled`: counts
 * neither way), whether the end may be told (`a`: yes; a number N: a failure that makes the streak
 * N or more, or a success that ended a streak of N or more, whose `recovered` may be told; '': no), this host (`untold.ts`), the job. Counted only when the run is in that set (BullMQ's move went through) and
 * once per run (a mark on its hash: a repeated end after a lost reply counts nothing). A success
 * keeps the streak it ended as `endedStreak`. An end that may be told is marked untold in the
 * same step, with the streaks it left (the layout is `untold-scripts.ts`'s), until its host has told it: a host killed in between
 * leaves the mark for another. Returns {counted, failStreak, endedStreak, folds, marked}: `folds`
 * grows with each counted end, so a mirror read older than a fold this host applied is told apart.
 */
const FOLD = `
local function streaks()
  local s = redis.call('HMGET', KEYS[1], 'failStreak', 'endedStreak')
  return tonumber(s[1] or '0'), tonumber(s[2] or '0')
end
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) or redis.call('HSETNX', KEYS[2], 'jhFolded', '1') == 0 then
  local fail, ended = streaks()
  -- A repeated end (its first reply lost): still this host's to tell if it holds the mark.
  local mark = redis.call('HGET', KEYS[5], ARGV[1])
  local mine = mark and string.find(mark, '\t' .. ARGV[4] .. '\t', 1, true) and 1 or 0
  return {0, fail, ended, tonumber(redis.call('HGET', KEYS[1], 'folds') or '0'), mine}
end
local fail, ended
if ARGV[2] == 'succeeded' then
  ended, fail = tonumber(redis.call('HGET', KEYS[1], 'failStreak') or '0'), 0
  redis.call('HSET', KEYS[1], 'endedStreak', ended, 'failStreak', 0)
elseif ARGV[2] == 'failed' then
  fail = redis.call('HINCRBY', KEYS[1], 'failStreak', 1)
  ended = tonumber(redis.call('HGET', KEYS[1], 'endedStreak') or '0')
else
  fail, ended = streaks()
end
local marked, n = 0, tonumber(ARGV[3])
if ARGV[3] == 'a' or (n and ((ARGV[2] == 'failed' and fail >= n) or (ARGV[2] == 'succeeded' and ended >= n))) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], table.concat({ARGV[2], fail, ended, ARGV[5], ARGV[4], '', now}, '\t'))
  marked = 1
end
return {1, fail, ended, redis.call('HINCRBY', KEYS[1], 'folds', 1), marked}`;

/**
 * Marks a started run canceled for whoever holds it: BullMQ's deferred failure (\`defa\`) fails it
 * at its next start without running the handler. KEYS: the job hash. Returns 0 when the run is
 * gone, -1 when it has finished, 1 when marked.
 */
const MARK_CANCELED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], '${F.finishedOn}') == 1 then return -1 end
redis.call('HSET', KEYS[1], '${F.defa}', ARGV[1])
return 1`;

/**
 * Appends a run's log lines, keeping the newest LOG_MAX_LINES and counting the rest as dropped.
 * KEYS: the list, its dropped counter. ARGV: max lines, dropped by the writer, TTL (ms), lines...
 */
const APPEND_LOG = `
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
local over = n - tonumber(ARGV[1])
if over > 0 then redis.call('LTRIM', KEYS[1], over, -1) else over = 0 end
local dropped = over + tonumber(ARGV[2])
if dropped > 0 then redis.call('INCRBY', KEYS[2], dropped) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return n - over`;

/** The scripts, as ioredis commands on a connection (a MULTI made from it has them too). */
export interface JobhostCommands {
  jhAdmit(
    numKeys: '2',
    state: string,
    jobKey: string,
    once: string,
    cooldownMs: string,
    configEnabled: string,
    fireAt: string,
    recordFireAt: string,
  ): Promise<[string, string]>;
  jhAdmit(
    numKeys: '5',
    state: string,
    jobKey: string,
    runs: string,
    runsOfJob: string,
    stream: string,
    once: string,
    cooldownMs: string,
    configEnabled: string,
    fireAt: string,
    recordFireAt: string,
    member: string,
    maxLen: string,
    host: string,
    at: string,
    data: string,
  ): Promise<[string, string]>;
  jhRaise(state: string, field: string, at: string): Promise<number>;
  jhThrottle(window: string, held: string, ms: string, status: string): Promise<Array<string | number>>;
  jhTakeHeld(held: string): Promise<string[]>;
  jhSlowMark(jobHash: string): Promise<number>;
  jhTakeEnded(held: string, window: string): Promise<Array<string | number>>;
  jhAdmitted(
    jobKey: string,
    runs: string,
    runsOfJob: string,
    stream: string,
    dedupKey: string,
    member: string,
    hasDedup: string,
    maxLen: string,
    host: string,
    at: string,
    data: string,
  ): Promise<[number, string?]>;
  jhFold(
    state: string,
    jobKey: string,
    finishedSet: string,
    untold: string,
    untoldEnds: string,
    runId: string,
    outcome: string,
    tell: string,
    host: string,
    job: string,
  ): Promise<[number, number, number, number, number]>;
  jhMarkCanceled(jobKey: string, reason: string): Promise<number>;
  jhAppendLog(list: string, dropped: string, maxLines: string, droppedByWriter: string, ttlMs: string, ...lines: string[]): Promise<number>;
}

export type ScriptedRedis = Redis & JobhostCommands & DeliveryCommands & OwnedWriteCommands & HistoryCommands & StateCommands & UntoldCommands;

/** Every Lua script jobhost defines, by command name (BullMQ's own are BullMQ's). */
export const JOBHOST_SCRIPTS: Readonly<Record<string, LuaScript>> = {
  jhAdmit: { keys: undefined, lua: ADMIT },
  jhAdmitted: { keys: 5, lua: ADMITTED },
  jhRaise: { keys: 1, lua: RAISE },
  jhThrottle: { keys: 2, lua: THROTTLE },
  jhTakeHeld: { keys: 1, lua: TAKE_HELD },
  jhSlowMark: { keys: 1, lua: SLOW_MARK },
  jhTakeEnded: { keys: 2, lua: TAKE_ENDED },
  jhFold: { keys: 5, lua: FOLD },
  jhMarkCanceled: { keys: 1, lua: MARK_CANCELED },
  jhAppendLog: { keys: 2, lua: APPEND_LOG },
  ...HISTORY_SCRIPTS,
  ...STATE_SCRIPTS,
  ...DELIVERY_SCRIPTS,
  ...OWNED_WRITE_SCRIPTS,
  ...AUDIT_SCRIPTS,
  ...AFTER_SCRIPTS,
  ...DEBOUNCE_SCRIPTS,
  ...UNTOLD_SCRIPTS,
};

/** Defines jobhost's scripts on a connection (EVALSHA, loaded on first use per connection). */
export function defineScripts(redis: Redis): ScriptedRedis {
  for (const [name, { keys, lua }] of Object.entries(JOBHOST_SCRIPTS)) {
    redis.defineCommand(name, keys === undefined ? { lua } : { numberOfKeys: keys, lua });
  }
  return redis as ScriptedRedis;
}
