import type { Redis } from 'ioredis';
import { defineAfterScripts } from './after-scripts.js';
import { type DeliveryCommands, defineDeliveryScripts } from './delivery-scripts.js';
import { CANCELED_REASON } from './keys.js';
import { defineOwnedWriteScripts, type OwnedWriteCommands } from './owned-writes.js';

/**
 * jobhost's own Lua scripts, next to BullMQ's. Each runs atomically in Redis; together with
 * BullMQ's add script inside one MULTI they make admission and the add one step. They read keys
 * derived from the prefix (a job's queue keys), which is fine on one Redis (not Redis Cluster,
 * where BullMQ itself needs a hash-tagged prefix).
 */

/**
 * Admission, before BullMQ's add in the same MULTI. KEYS: the job's state hash, the new run's job
 * hash. ARGV: once (1/0), cooldown ms, enabled by config (1/0), and for a schedule fire its time
 * and the `lastFireAt` to record ('' otherwise). A fire at or before `lastFireAt` was made by
 * another host: refused `fired` (checked first and recorded at once, so exactly one host goes on
 * to the other rules and reports their refusal). A refusal marks the run's job hash so BullMQ's
 * add that follows adds nothing (an existing hash: a fire's run another host added) and
 * `ADMITTED` removes the mark. Times come from Redis (TIME), one clock for every host.
 */
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
if refused then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[2], '__jh_refused_kept', '1')
  else
    redis.call('HSET', KEYS[2], '__jh_refused', '1')
  end
  return refused
end
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
 * Storm control (`Backend.throttle`): opens the window of a key when none is open (1), else counts
 * the status as held back (0). KEYS: the window, the held counts. ARGV: window ms, status. The
 * counts outlive the window by an hour at most (a digest takes them at its end).
 */
const THROTTLE = `
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 1 end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]) + 3600000)
return 0`;

/** What was held back under a key, cleared. KEYS: the held counts. Returns HGETALL. */
const TAKE_HELD = `
local held = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return held`;

/**
 * After BullMQ's add, in the same MULTI. KEYS: the run's job hash, the global index, the job's
 * index, the cluster stream. ARGV: the index member, the dedup key (or ''), the queue's key base,
 * and the run's `run.queued` for the other hosts (stream length, host, at, data JSON). Returns {1}
 * when the run was added (and indexes it and appends its `run.queued` to the cluster stream, ahead
 * of anything a host that starts it can append), {0} when ADMIT refused it (and drops the
 * placeholder), or {2, holder, holderKey} when BullMQ's deduplication kept another run.
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
  local holderKey = ''
  if ARGV[2] ~= '' then
    holder = redis.call('GET', ARGV[2]) or ''
    if holder ~= '' then
      local data = redis.call('HGET', ARGV[3] .. holder, 'data')
      if data then
        local ok, decoded = pcall(cjson.decode, data)
        if ok and type(decoded) == 'table' and type(decoded['key']) == 'string' then holderKey = decoded['key'] end
      end
    end
  end
  return {2, holder, holderKey}
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'event', 'host.event', 'host', ARGV[5], 'type', 'run.queued', 'at', ARGV[6], 'data', ARGV[7])
return {1}`;

/**
 * The alert rules' failure streak, folded in the MULTI that holds BullMQ's moveToFinished (see
 * JobQueue): the run's end and its count are one step, whichever host ends it. KEYS: the job's
 * state, the run's job hash, the finished set BullMQ moved it to. ARGV: run id, outcome
 * (`succeeded`, `failed`, `canceled`: counts neither way). Counted only when the run is in that
 * set (BullMQ's move went through) and once per run (a mark on its hash: a repeated end after a
 * lost reply counts nothing). A success keeps the streak it ended as `endedStreak`. Returns
 * {counted, failStreak, endedStreak, folds}: `folds` grows with each counted end, so a mirror
 * read older than a fold this host applied is told apart.
 */
const FOLD = `
local function num(field) return tonumber(redis.call('HGET', KEYS[1], field) or '0') end
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) or redis.call('HSETNX', KEYS[2], 'jhFolded', '1') == 0 then
  return {0, num('failStreak'), num('endedStreak'), num('folds')}
end
if ARGV[2] == 'failed' then
  redis.call('HINCRBY', KEYS[1], 'failStreak', 1)
elseif ARGV[2] == 'succeeded' then
  redis.call('HSET', KEYS[1], 'endedStreak', num('failStreak'), 'failStreak', 0)
end
redis.call('HINCRBY', KEYS[1], 'folds', 1)
return {1, num('failStreak'), num('endedStreak'), num('folds')}`;

/**
 * Marks a started run canceled for whoever holds it: BullMQ's deferred failure (\`defa\`) fails it
 * at its next start without running the handler. KEYS: the job hash. Returns 0 when the run is
 * gone, -1 when it has finished, 1 when marked.
 */
const MARK_CANCELED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'finishedOn') == 1 then return -1 end
redis.call('HSET', KEYS[1], 'defa', ARGV[1])
return 1`;

/**
 * One run of the history as a JSON array, from its BullMQ job hash (with the state it is in) or
 * its tombstone; nil when neither exists (retention removed it). \`want\` filters by status.
 */
const ITEM = `
local function pad(n) return string.format('%.0f', n) end
local function item(prefix, member, want)
  local sep = string.find(member, ':', 1, true)
  if not sep then return nil, false end
  local id = string.sub(member, 1, sep - 1)
  local job = string.sub(member, sep + 1)
  local q = prefix .. ':' .. job .. ':'
  local jk = q .. id
  if redis.call('EXISTS', jk) == 1 then
    if redis.call('HEXISTS', jk, '__jh_refused') == 1 then return nil, true end
    local status
    if redis.call('ZSCORE', q .. 'completed', id) then status = 'succeeded'
    elseif redis.call('ZSCORE', q .. 'failed', id) then
      if redis.call('HGET', jk, 'failedReason') == '${CANCELED_REASON}' then status = 'canceled' else status = 'failed' end
    elseif redis.call('LPOS', q .. 'active', id) then status = 'running'
    else status = 'queued' end
    if want ~= '' and want ~= status then return nil, true end
    local delayedAt = ''
    if status == 'queued' then
      local s = redis.call('ZSCORE', q .. 'delayed', id)
      if s then delayedAt = pad(math.floor(tonumber(s) / 4096)) end
    end
    local f = redis.call('HMGET', jk, 'data', 'opts', 'timestamp', 'processedOn', 'finishedOn', 'returnvalue', 'failedReason',
      'stacktrace', 'atm', 'ats', 'progress', 'pb', 'defa')
    return cjson.encode({'h', id, job, status, delayedAt, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13]}), true
  end
  local tomb = redis.call('GET', prefix .. ':__jh:tomb:' .. id)
  if tomb then
    if want ~= '' and want ~= 'canceled' then return nil, true end
    return cjson.encode({'t', tomb}), true
  end
  return nil, false
end`;

/**
 * A page of history, newest first. KEYS: the index to walk (global or a job's), the global index.
 * ARGV: prefix, before (a run id, or ''), limit, status (or ''), budget (entries scanned at most).
 * Returns {items, next, scanned}: \`next\` is the id to pass as \`before\`, '' at the end. Entries
 * whose run retention removed are dropped from both indexes on the way.
 */
const PAGE = `${ITEM}
local prefix, limit, want, budget = ARGV[1], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local maxb = '+'
if ARGV[2] ~= '' then maxb = '(' .. ARGV[2] end
local out, scanned, lastId, more, done = {}, 0, '', false, false
while not done and scanned < budget do
  local chunk = redis.call('ZREVRANGEBYLEX', KEYS[1], maxb, '-', 'LIMIT', 0, 100)
  if #chunk == 0 then done = true break end
  for _, m in ipairs(chunk) do
    scanned = scanned + 1
    maxb = '(' .. m
    local json, exists = item(prefix, m, want)
    if not exists then
      local sep = string.find(m, ':', 1, true)
      redis.call('ZREM', KEYS[2], m)
      if sep then redis.call('ZREM', prefix .. ':__jh:runs:' .. string.sub(m, sep + 1), m) end
    elseif json then
      if #out == limit then more = true done = true break end
      out[#out + 1] = json
      lastId = string.sub(m, 1, (string.find(m, ':', 1, true) or 0) - 1)
    end
    if scanned >= budget then break end
  end
end
local next = ''
if more then next = lastId
elseif not done and scanned >= budget then next = string.sub(maxb, 2, (string.find(maxb, ':', 1, true) or 0) - 1) end
return {out, next, scanned}`;

/** One run by id (the index says which job). KEYS: the global index. ARGV: prefix, id. */
const GET_RUN = `${ITEM}
local m = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. ARGV[2] .. ':', '[' .. ARGV[2] .. ':\\255', 'LIMIT', 0, 1)
if #m == 0 then return false end
local json = item(ARGV[1], m[1], '')
return json or false`;

/**
 * What every host mirrors of every known job, in one read. KEYS: the set of jobs, the settings
 * hash. ARGV: prefix, settings TTL (ms), durations (1/0), lockDuration, stalledInterval. Also
 * keeps the shared settings alive (set again if they lapsed). Returns {jobsJSON, indexSize}.
 */
const STATES = `
local prefix = ARGV[1]
redis.call('HSETNX', KEYS[2], 'lockDuration', ARGV[4])
redis.call('HSETNX', KEYS[2], 'stalledInterval', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local names = redis.call('SMEMBERS', KEYS[1])
local out = {}
local function durationsOf(q, set, n)
  local d = {}
  for _, id in ipairs(redis.call('ZREVRANGE', q .. set, 0, n - 1)) do
    local f = redis.call('HMGET', q .. id, 'processedOn', 'finishedOn', 'atm', 'stacktrace', 'failedReason')
    if f[1] and f[2] and f[5] ~= '${CANCELED_REASON}' then
      local start = tonumber(f[1])
      if f[3] and tonumber(f[3]) > 1 and f[4] then
        local ok, traces = pcall(cjson.decode, f[4])
        if ok and type(traces) == 'table' and type(traces[1]) == 'string' then
          local ok2, rec = pcall(cjson.decode, traces[1])
          if ok2 and type(rec) == 'table' and type(rec['s']) == 'number' then start = rec['s'] end
        end
      end
      d[#d + 1] = tonumber(f[2]) - start
    end
  end
  return d
end
for _, name in ipairs(names) do
  local q = prefix .. ':' .. name .. ':'
  local st = redis.call('HMGET', prefix .. ':__jh:job:' .. name, 'enabled', 'lastFireAt', 'lastSuccessAt', 'succeededRun',
    'canceled', 'canceledRunning', 'lastCanceledRun', 'lastCanceledAt', 'failStreak', 'endedStreak', 'folds', 'missedThrough')
  local lc = redis.call('ZREVRANGE', q .. 'completed', 0, 0, 'WITHSCORES')
  local lf = redis.call('ZREVRANGE', q .. 'failed', 0, 0, 'WITHSCORES')
  local lfReason = ''
  if lf[1] then lfReason = redis.call('HGET', q .. lf[1], 'failedReason') or '' end
  local j = {
    name = name, enabled = st[1] or '', lastFireAt = st[2] or '', lastSuccessAt = st[3] or '', succeededRun = st[4] or '',
    canceled = tonumber(st[5] or '0'), canceledRunning = tonumber(st[6] or '0'),
    lastCanceledRun = st[7] or '', lastCanceledAt = st[8] or '',
    failStreak = tonumber(st[9] or '0'), endedStreak = tonumber(st[10] or '0'), folds = tonumber(st[11] or '0'),
    missedThrough = st[12] or '',
    completed = tonumber(redis.call('HGET', q .. 'metrics:completed', 'count') or '0'),
    failed = tonumber(redis.call('HGET', q .. 'metrics:failed', 'count') or '0'),
    lastCompleted = lc[1] or '', lastCompletedAt = lc[2] or '',
    lastFailed = lf[1] or '', lastFailedAt = lf[2] or '', lastFailedReason = lfReason,
    waiting = redis.call('LLEN', q .. 'wait') + redis.call('ZCARD', q .. 'prioritized') + redis.call('LLEN', q .. 'paused'),
    delayed = redis.call('ZCARD', q .. 'delayed'),
    active = redis.call('LLEN', q .. 'active'),
  }
  if ARGV[3] == '1' then
    local d = durationsOf(q, 'completed', 100)
    for _, v in ipairs(durationsOf(q, 'failed', 50)) do d[#d + 1] = v end
    if #d > 0 then j['durations'] = d end
  end
  out[#out + 1] = cjson.encode(j)
end
return {out, redis.call('ZCARD', prefix .. ':__jh:runs')}`;

/**
 * Drops index entries whose run retention removed, walking from the oldest end and resuming where
 * the last sweep stopped. KEYS: global index, the cursor key. ARGV: prefix, budget, cursor TTL (ms).
 */
const PRUNE_INDEX = `
local prefix, budget = ARGV[1], tonumber(ARGV[2])
local from = redis.call('GET', KEYS[2])
local minb = '-'
if from then minb = '(' .. from end
local chunk = redis.call('ZRANGEBYLEX', KEYS[1], minb, '+', 'LIMIT', 0, budget)
local pruned = 0
for _, m in ipairs(chunk) do
  local sep = string.find(m, ':', 1, true)
  if sep then
    local id, job = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    if redis.call('EXISTS', prefix .. ':' .. job .. ':' .. id) == 0 and redis.call('EXISTS', prefix .. ':__jh:tomb:' .. id) == 0 then
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZREM', prefix .. ':__jh:runs:' .. job, m)
      pruned = pruned + 1
    end
  end
end
if #chunk < budget then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], chunk[#chunk], 'PX', ARGV[3]) end
if #chunk < budget then return {pruned, 1} else return {pruned, 0} end`;

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
    state: string,
    jobKey: string,
    once: string,
    cooldownMs: string,
    configEnabled: string,
    fireAt: string,
    recordFireAt: string,
  ): Promise<[string, string]>;
  jhRaise(state: string, field: string, at: string): Promise<number>;
  jhThrottle(window: string, held: string, ms: string, status: string): Promise<number>;
  jhTakeHeld(held: string): Promise<string[]>;
  jhAdmitted(
    jobKey: string,
    runs: string,
    runsOfJob: string,
    stream: string,
    member: string,
    dedupKey: string,
    queueBase: string,
    maxLen: string,
    host: string,
    at: string,
    data: string,
  ): Promise<[number, string?, string?]>;
  jhFold(state: string, jobKey: string, finishedSet: string, runId: string, outcome: string): Promise<[number, number, number, number]>;
  jhMarkCanceled(jobKey: string, reason: string): Promise<number>;
  jhPage(index: string, runs: string, prefix: string, before: string, limit: string, status: string, budget: string): Promise<[string[], string, number]>;
  jhGetRun(runs: string, prefix: string, id: string): Promise<string | null>;
  jhStates(
    jobs: string,
    settings: string,
    prefix: string,
    settingsTtlMs: string,
    durations: string,
    lockDuration: string,
    stalledInterval: string,
  ): Promise<[string[], number]>;
  jhPruneIndex(runs: string, cursor: string, prefix: string, budget: string, cursorTtlMs: string): Promise<[number, number]>;
  jhAppendLog(list: string, dropped: string, maxLines: string, droppedByWriter: string, ttlMs: string, ...lines: string[]): Promise<number>;
}

export type ScriptedRedis = Redis & JobhostCommands & DeliveryCommands & OwnedWriteCommands;

/** Defines jobhost's scripts (the delivery and owned-write ones too) on a connection (EVALSHA, loaded on first use per connection). */
export function defineScripts(redis: Redis): ScriptedRedis {
  const define = (name: string, numberOfKeys: number, lua: string): void => redis.defineCommand(name, { numberOfKeys, lua });
  define('jhAdmit', 2, ADMIT);
  define('jhAdmitted', 4, ADMITTED);
  define('jhRaise', 1, RAISE);
  define('jhThrottle', 2, THROTTLE);
  define('jhTakeHeld', 1, TAKE_HELD);
  define('jhFold', 3, FOLD);
  define('jhMarkCanceled', 1, MARK_CANCELED);
  define('jhPage', 2, PAGE);
  define('jhGetRun', 1, GET_RUN);
  define('jhStates', 2, STATES);
  define('jhPruneIndex', 2, PRUNE_INDEX);
  define('jhAppendLog', 2, APPEND_LOG);
  defineDeliveryScripts(redis);
  defineOwnedWriteScripts(redis);
  defineAfterScripts(redis);
  return redis as ScriptedRedis;
}
