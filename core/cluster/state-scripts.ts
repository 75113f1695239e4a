import type { Redis } from 'ioredis';
import { JOB_FIELD as F, METRICS_COUNT, queueKey } from './bullmq-internals.js';
import { CANCELED_REASON, type ClusterKeys } from './keys.js';

/**
 * The read of every job's state that `mirror.ts` keeps, by scripts given all their keys. The set
 * of jobs is data, so the caller passes the jobs it knows (with their keys) and the script says
 * which the set holds now: a job added since is read again at once. The runs whose job hashes it
 * needs (the last failure's reason, the ends durations come from) are read by a second script,
 * and only when there is something new to read.
 */

/** Keys per job: its state, completed, failed, the two metrics, wait, prioritized, paused, delayed, active. */
const JOB_KEYS = 10;

/** Runs a duration sample takes (the newest succeeded, the newest failed). */
const DURATION_RUNS = { completed: 100, failed: 50 } as const;

function jobKeys(keys: ClusterKeys, job: string): string[] {
  const q = (s: Parameters<typeof queueKey>[2]) => queueKey(keys.prefix, job, s);
  return [
    keys.jobState(job),
    q('completed'),
    q('failed'),
    q('metrics:completed'),
    q('metrics:failed'),
    q('wait'),
    q('prioritized'),
    q('paused'),
    q('delayed'),
    q('active'),
  ];
}

/**
 * KEYS: the set of jobs, the settings hash, the history index, then JOB_KEYS per job. ARGV:
 * settings TTL (ms), durations (1/0), lockDuration, stalledInterval, then the jobs. Also keeps
 * the shared settings alive (set again if they lapsed). Returns {jobsJSON, indexSize, members}:
 * jobs not in the set are left out; `members` is the set (a job missing from ARGV is read again
 * by the caller). With durations, each job has the ids of its newest ends (`dc`, `df`).
 */
const STATES = `
redis.call('HSETNX', KEYS[2], 'lockDuration', ARGV[3])
redis.call('HSETNX', KEYS[2], 'stalledInterval', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local members = redis.call('SMEMBERS', KEYS[1])
local known = {}
for _, m in ipairs(members) do known[m] = true end
local out = {}
for i = 5, #ARGV do
  local name, b = ARGV[i], 3 + (i - 5) * ${JOB_KEYS}
  if known[name] then
    local st = redis.call('HMGET', KEYS[b + 1], 'enabled', 'lastFireAt', 'lastSuccessAt', 'succeededRun',
      'canceled', 'canceledRunning', 'lastCanceledRun', 'lastCanceledAt', 'failStreak', 'endedStreak', 'folds', 'missedThrough')
    local lc = redis.call('ZREVRANGE', KEYS[b + 2], 0, 0, 'WITHSCORES')
    local lf = redis.call('ZREVRANGE', KEYS[b + 3], 0, 0, 'WITHSCORES')
    local j = {
      name = name, enabled = st[1] or '', lastFireAt = st[2] or '', lastSuccessAt = st[3] or '', succeededRun = st[4] or '',
      canceled = tonumber(st[5] or '0'), canceledRunning = tonumber(st[6] or '0'),
      lastCanceledRun = st[7] or '', lastCanceledAt = st[8] or '',
      failStreak = tonumber(st[9] or '0'), endedStreak = tonumber(st[10] or '0'), folds = tonumber(st[11] or '0'),
      missedThrough = st[12] or '',
      completed = tonumber(redis.call('HGET', KEYS[b + 4], '${METRICS_COUNT}') or '0'),
      failed = tonumber(redis.call('HGET', KEYS[b + 5], '${METRICS_COUNT}') or '0'),
      lastCompleted = lc[1] or '', lastCompletedAt = lc[2] or '',
      lastFailed = lf[1] or '', lastFailedAt = lf[2] or '',
      waiting = redis.call('LLEN', KEYS[b + 6]) + redis.call('ZCARD', KEYS[b + 7]) + redis.call('LLEN', KEYS[b + 8]),
      delayed = redis.call('ZCARD', KEYS[b + 9]),
      active = redis.call('LLEN', KEYS[b + 10]),
    }
    if ARGV[2] == '1' then
      j['dc'] = redis.call('ZREVRANGE', KEYS[b + 2], 0, ${DURATION_RUNS.completed - 1})
      j['df'] = redis.call('ZREVRANGE', KEYS[b + 3], 0, ${DURATION_RUNS.failed - 1})
    end
    out[#out + 1] = cjson.encode(j)
  end
end
return {out, redis.call('ZCARD', KEYS[3]), members}`;

/**
 * Ended runs, by their job hashes (KEYS). Returns for each {duration, failedReason}: the duration
 * (ms, from the start of its last attempt to its end; '' when it has none or was canceled) and
 * its failure reason ('' for none, or when the run is gone).
 */
const RUN_ENDS = `
local out = {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], '${F.processedOn}', '${F.finishedOn}', '${F.atm}', '${F.stacktrace}', '${F.failedReason}')
  local d = ''
  if f[1] and f[2] and f[5] ~= '${CANCELED_REASON}' then
    local start = tonumber(f[1])
    if f[3] and tonumber(f[3]) > 1 and f[4] then
      local ok, traces = pcall(cjson.decode, f[4])
      if ok and type(traces) == 'table' and type(traces[1]) == 'string' then
        local ok2, rec = pcall(cjson.decode, traces[1])
        if ok2 and type(rec) == 'table' and type(rec['s']) == 'number' then start = rec['s'] end
      end
    end
    d = string.format('%.0f', tonumber(f[2]) - start)
  end
  out[#out + 1] = {d, f[5] or ''}
end
return out`;

export const STATE_SCRIPTS = {
  jhStates: { keys: undefined, lua: STATES },
  jhRunEnds: { keys: undefined, lua: RUN_ENDS },
};

/** The scripts, as ioredis commands (no fixed number of keys: it comes first). */
export interface StateCommands {
  jhStates(numKeys: number, ...keysThenArgs: string[]): Promise<[string[], number, string[]]>;
  jhRunEnds(numKeys: number, ...jobHashes: string[]): Promise<Array<[string, string]>>;
}

/** A job's state as STATES reads it (JSON), with what RUN_ENDS adds: the last failure's reason and the durations. */
type JobRead = Record<string, unknown> & { name: string; lastFailed: string; dc?: string[]; df?: string[] };

export interface StateReadOptions {
  settingsTtlMs: number;
  lockDuration: number;
  stalledInterval: number;
}

/** Reads every job's state (see `Mirror`), remembering the set of jobs and each job's last failure's reason between reads. */
export class StateReader {
  readonly #redis: Redis & StateCommands;
  readonly #keys: ClusterKeys;
  readonly #o: StateReadOptions;
  #jobs: string[] = [];
  readonly #reasons = new Map<string, { id: string; reason: string }>();

  constructor(redis: Redis & StateCommands, keys: ClusterKeys, options: StateReadOptions) {
    this.#redis = redis;
    this.#keys = keys;
    this.#o = options;
  }

  /** Each job's state as an object (the shape `mirror.ts` parses), and the history index's size. */
  async read(durations: boolean): Promise<{ items: Record<string, unknown>[]; indexSize: number }> {
    let [texts, indexSize, members] = await this.#states(durations);
    if (members.some((m) => !this.#jobs.includes(m))) {
      // A job this host did not know of: read again with every job of the set.
      this.#jobs = [...members].sort();
      [texts, indexSize, members] = await this.#states(durations);
    }
    this.#jobs = [...members].sort();
    const jobs = texts.map((t) => JSON.parse(t) as JobRead);
    await this.#ends(jobs, durations);
    return { items: jobs, indexSize: Number(indexSize) };
  }

  #states(durations: boolean): Promise<[string[], number, string[]]> {
    const k = this.#keys;
    const keys = [k.jobs, k.settings, k.runs, ...this.#jobs.flatMap((job) => jobKeys(k, job))];
    const o = this.#o;
    return this.#redis.jhStates(
      keys.length,
      ...keys,
      String(o.settingsTtlMs),
      durations ? '1' : '0',
      String(o.lockDuration),
      String(o.stalledInterval),
      ...this.#jobs,
    );
  }

  /** Fills in `lastFailedReason` (read again only for a new last failure) and, with durations, `durations`. */
  async #ends(jobs: JobRead[], durations: boolean): Promise<void> {
    const wanted: Array<{ job: JobRead; id: string; kind: 'reason' | 'dc' | 'df' }> = [];
    for (const job of jobs) {
      const known = this.#reasons.get(job.name);
      if (job.lastFailed && known?.id !== job.lastFailed) wanted.push({ job, id: job.lastFailed, kind: 'reason' });
      if (durations) {
        // cjson encodes an empty list as {}.
        for (const id of Array.isArray(job.dc) ? job.dc : []) wanted.push({ job, id, kind: 'dc' });
        for (const id of Array.isArray(job.df) ? job.df : []) wanted.push({ job, id, kind: 'df' });
      }
    }
    const ends = wanted.length > 0 ? await this.#redis.jhRunEnds(wanted.length, ...wanted.map((w) => this.#keys.queue(w.job.name, w.id))) : [];
    const sampled = new Map<JobRead, number[]>();
    for (const [i, w] of wanted.entries()) {
      const [duration, reason] = ends[i] ?? ['', ''];
      if (w.kind === 'reason') this.#reasons.set(w.job.name, { id: w.id, reason });
      else if (duration !== '') {
        const list = sampled.get(w.job) ?? [];
        list.push(Number(duration));
        sampled.set(w.job, list);
      }
    }
    for (const job of jobs) {
      const known = this.#reasons.get(job.name);
      job['lastFailedReason'] = job.lastFailed && known?.id === job.lastFailed ? known.reason : '';
      const d = sampled.get(job);
      if (d && d.length > 0) job['durations'] = d;
      delete job.dc;
      delete job.df;
    }
  }
}
