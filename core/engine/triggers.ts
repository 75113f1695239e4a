import { isoTime } from '../contract/clock.js';
import { parseDuration, type Duration } from '../contract/duration.js';
import { HostError } from '../contract/errors.js';
import type { SkipReason } from '../contract/events.js';
import type { EffectiveJob } from './jobs.js';
import type { ParamsResult } from '../contract/plugin.js';
import type { Run, RunSource } from '../contract/run.js';
import type { JobRecord } from '../store/store.js';

/**
 * The parts of a trigger that decide, before anything is stored: are the params valid, may the
 * job take a run now, and what run to create. The host calls these in order and enqueues.
 */

export interface TriggerOptions {
  params?: unknown;
  /** Run no earlier than this long from now. */
  delay?: Duration | undefined;
  /** Run no earlier than this time (ISO string, Date or ms). */
  runAt?: string | number | Date | undefined;
  /** Dedup key: refused while a queued or running run of the job holds the same key. */
  key?: string | undefined;
  /** Lower runs first within a queue (default 0). */
  priority?: number | undefined;
  source?: RunSource | undefined;
}

export interface TriggerResult {
  runId: string;
}

export interface PublishResult {
  enqueued: string[];
  skipped: Array<{ job: string; reason: SkipReason }>;
  errors: Array<{ job: string; code: string; message: string }>;
}

/** The validated params of a trigger, or INVALID_PARAMS listing every issue. */
function checkedParams(result: ParamsResult<unknown>): unknown {
  if (result.issues) {
    const issues = result.issues.map((i) => ({
      path: (i.path ?? []).map((p) => String(typeof p === 'object' && p !== null ? p.key : p)).join('.'),
      message: i.message,
    }));
    const first = issues[0];
    throw new HostError('INVALID_PARAMS', `params${first?.path ? '.' + first.path : ''}: ${first?.message ?? 'invalid'}`, { issues });
  }
  const params = result.value;
  if (params === undefined) return {};
  try {
    // Runs are stored as JSON: refuse what would not survive it, before it is acknowledged.
    JSON.stringify(params);
  } catch (err) {
    throw new HostError('INVALID_PARAMS', `params: not JSON-serializable (${(err as Error).message})`, { issues: [] });
  }
  return params;
}

/**
 * Params merged over the job's config defaults and checked by its schema. A promise only when
 * the schema validates asynchronously, so the common path stays synchronous.
 */
export function validateParams(job: EffectiveJob, input: unknown): unknown {
  let params = input;
  const isObject = typeof params === 'object' && params !== null && !Array.isArray(params);
  if (params !== undefined && !isObject && !job.paramsSchema) {
    throw new HostError('INVALID_PARAMS', 'params: expected an object', { issues: [{ path: '', message: 'expected an object' }] });
  }
  if (Object.keys(job.paramDefaults).length > 0 && (params === undefined || isObject)) {
    params = { ...job.paramDefaults, ...(params as object | undefined) };
  }
  if (job.paramsSchema) {
    const result = job.paramsSchema['~standard'].validate(params ?? {});
    if (result instanceof Promise) return result.then(checkedParams);
    return checkedParams(result);
  }
  return checkedParams({ value: params });
}

/** What the refusal rules need to know about the job's runs in flight. */
export interface ActiveRuns {
  activeCount(job: string): number;
  firstActive(job: string): Run | undefined;
  byKey(job: string, key: string): Run | undefined;
}

export interface Refusal {
  reason: SkipReason;
  detail: string;
  runId?: string;
}

/** Why the job refuses a new run now (disabled, once, cooldown, duplicate, overlap), or null. */
export function refusal(job: EffectiveJob, record: JobRecord, active: ActiveRuns, key: string | null, now: number): Refusal | null {
  if (!job.enabled) return { reason: 'disabled', detail: 'the job is disabled' };
  if (job.once) {
    if (record.lastSuccessAt !== undefined) {
      return { reason: 'once', detail: 'the job may succeed once and already has', ...(record.lastRun ? { runId: record.lastRun.runId } : {}) };
    }
    const first = active.firstActive(job.name);
    if (first) return { reason: 'once', detail: 'a run of this once-only job is already queued or running', runId: first.id };
  }
  if (job.cooldownMs > 0 && record.lastSuccessAt !== undefined) {
    const until = Date.parse(record.lastSuccessAt) + job.cooldownMs;
    if (now < until) return { reason: 'cooldown', detail: `cooling down until ${isoTime(until)}` };
  }
  if (key !== null) {
    const holder = active.byKey(job.name, key);
    if (holder) return { reason: 'duplicate', detail: `run ${holder.id} with key "${key}" is already queued or running`, runId: holder.id };
  }
  if (job.overlap === 'skip' && active.activeCount(job.name) > 0) {
    const first = active.firstActive(job.name);
    return { reason: 'overlap', detail: `run ${first?.id ?? ''} is already queued or running`, ...(first ? { runId: first.id } : {}) };
  }
  return null;
}

/** The latest `runAt` accepted: the last millisecond an ISO time with a 4-digit year can show. */
const LATEST_RUN_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Checks a trigger's key, priority and timing and builds the queued run. */
export function buildRun(
  job: EffectiveJob,
  params: unknown,
  options: TriggerOptions,
  source: RunSource,
  now: number,
  id: string,
  extra?: Partial<Run>,
): Run {
  const key = options.key ?? null;
  if (key !== null && (typeof key !== 'string' || key.length === 0 || key.length > 500)) {
    throw new HostError('INVALID_BODY', 'key: expected a string of 1 to 500 characters');
  }
  const priority = options.priority ?? 0;
  if (!Number.isInteger(priority) || Math.abs(priority) > 1_000_000) {
    throw new HostError('INVALID_BODY', 'priority: expected an integer between -1000000 and 1000000');
  }
  let runAtMs = now;
  if (options.runAt !== undefined) {
    const at = options.runAt;
    runAtMs = at instanceof Date ? at.getTime() : typeof at === 'number' ? at : Date.parse(at);
    if (!Number.isFinite(runAtMs)) throw new HostError('INVALID_BODY', `runAt: not a valid time: ${String(at)}`);
    if (runAtMs > LATEST_RUN_AT) throw new HostError('INVALID_BODY', `runAt: ${String(at)} is later than 9999-12-31`);
    runAtMs = Math.max(runAtMs, now);
  } else if (options.delay !== undefined) {
    runAtMs = now + parseDuration(options.delay, 'delay');
  }
  const createdAt = isoTime(now);
  return {
    id,
    job: job.name,
    status: 'queued',
    source,
    params,
    priority,
    key,
    queue: job.queue,
    createdAt,
    runAt: runAtMs === now ? createdAt : isoTime(runAtMs),
    startedAt: null,
    endedAt: null,
    durationMs: null,
    progress: { fraction: 0, text: null },
    attempts: [],
    maxAttempts: job.maxAttempts,
    result: null,
    error: null,
    retryOf: null,
    event: null,
    ...extra,
  };
}
