import type { Job } from 'bullmq';
import { z } from 'zod';
import { isoTime } from '../contract/clock.js';
import type { RunError } from '../contract/errors.js';
import { type Attempt, type Progress, RUN_SOURCES, type Run, type RunSource, type RunStatus } from '../contract/run.js';
import { CANCELED_REASON } from './keys.js';

/**
 * A run as BullMQ keeps it, and back. A run is a BullMQ job whose id is the run id: its `data`
 * holds the run's own fields, BullMQ's fields hold the rest (`timestamp` = created, `processedOn`
 * = the current attempt's start, `finishedOn`, `returnvalue`, `progress`, `pb` = the host, `atm`
 * = attempts made). A failed attempt leaves its record as its "stack trace", which BullMQ stores
 * with the failure in the same write: no write of jobhost's own per attempt.
 */

/** BullMQ's priority is 1..2,097,151 and 0 means "before every prioritized job": ours moves up by this. */
export const PRIORITY_OFFSET = 1_000_001;

/** The `data` of a run's BullMQ job. */
export interface JobData {
  params: unknown;
  source: RunSource;
  key: string | null;
  queue: string;
  priority: number;
  runAt: number;
  retryOf: string | null;
  event: string | null;
  origin?: RunSource;
  after?: { runId: string; job: string };
  traceparent?: string;
}

const sources = new Set<unknown>(RUN_SOURCES);
const isSource = (v: unknown): v is RunSource => sources.has(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const stringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

/**
 * A job's `data` checked by hand, not by a schema library: every run a host fetches is read back
 * through here, and a schema's parse (with its copy of the object) was a measurable share of a
 * run's CPU (issue 26). Keeps the known fields only; undefined when one is not what a host writes.
 */
function jobDataOf(value: unknown): JobData | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const d = value as Record<string, unknown>;
  const { source, key, queue, priority, runAt, retryOf, event, origin, after, traceparent } = d;
  if (!isSource(source) || !stringOrNull(key) || typeof queue !== 'string' || !isNumber(priority) || !isNumber(runAt)) return undefined;
  if (!stringOrNull(retryOf) || !stringOrNull(event)) return undefined;
  const data: JobData = { params: d['params'], source, key, queue, priority, runAt, retryOf, event };
  if (origin !== undefined) {
    if (!isSource(origin)) return undefined;
    data.origin = origin;
  }
  if (after !== undefined) {
    const a = after as { runId?: unknown; job?: unknown } | null;
    if (typeof a !== 'object' || a === null || typeof a.runId !== 'string' || typeof a.job !== 'string') return undefined;
    data.after = { runId: a.runId, job: a.job };
  }
  if (traceparent !== undefined) {
    if (typeof traceparent !== 'string') return undefined;
    data.traceparent = traceparent;
  }
  return data;
}

export function toJobData(run: Run): JobData {
  const data: JobData = {
    params: run.params,
    source: run.source,
    key: run.key,
    queue: run.queue,
    priority: run.priority,
    runAt: Date.parse(run.runAt),
    retryOf: run.retryOf,
    event: run.event,
  };
  if (run.origin !== undefined) data.origin = run.origin;
  if (run.after) data.after = run.after;
  if (run.traceparent !== undefined) data.traceparent = run.traceparent;
  return data;
}

/** One ended attempt, as kept in the job's `stacktrace`: n, start, end (ms), error, host, delay before the next. */
const attemptRecord = z.object({
  jh: z.literal(1),
  n: z.number().int().positive(),
  s: z.number(),
  e: z.number(),
  c: z.string(),
  m: z.string(),
  h: z.string().nullable(),
  d: z.number(),
});

export type AttemptRecord = z.output<typeof attemptRecord>;

export function encodeAttempt(r: Omit<AttemptRecord, 'jh'>): string {
  return JSON.stringify({ jh: 1, ...r });
}

function decodeAttempt(text: unknown): AttemptRecord | null {
  if (typeof text !== 'string' || !text.startsWith('{"jh":1')) return null;
  try {
    const parsed = attemptRecord.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The ended attempts a job's `stacktrace` field holds (those jobhost wrote; BullMQ's own are skipped). */
export function attemptsOf(stacktrace: unknown): AttemptRecord[] {
  if (stacktrace === null || stacktrace === undefined || (Array.isArray(stacktrace) && stacktrace.length === 0)) return [];
  let list: unknown = stacktrace;
  if (typeof stacktrace === 'string') {
    try {
      list = JSON.parse(stacktrace);
    } catch {
      return [];
    }
  }
  if (!Array.isArray(list)) return [];
  return list.map(decodeAttempt).filter((r): r is AttemptRecord => r !== null);
}

const toAttempt = (r: AttemptRecord): Attempt => ({ n: r.n, startedAt: isoTime(r.s), endedAt: isoTime(r.e), error: { code: r.c, message: r.m } });

/**
 * What a run read from Redis is made of: BullMQ's fields, as the hash holds them (strings; null
 * when absent), or as a fetched BullMQ `Job` has them (`data`, `opts`, `progress` parsed).
 */
export interface JobFields {
  id: string;
  job: string;
  status: RunStatus;
  /** When a queued run waits for its time (ms), or null. */
  delayedAt: number | null;
  data: unknown;
  opts: unknown;
  timestamp: string | number | null;
  processedOn: string | number | null;
  finishedOn: string | number | null;
  returnvalue: string | null;
  failedReason: string | null;
  stacktrace: unknown;
  attemptsMade: string | number | null;
  progress: unknown;
  processedBy: string | null;
}

const num = (s: string | number | null | undefined): number | null => {
  if (s === null || s === undefined || s === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
};

function parseJson(s: unknown): unknown {
  if (typeof s !== 'string') return s ?? null;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return null;
  }
}

const progressShape = z.object({ fraction: z.number(), text: z.string().nullable() });

function progressOf(s: unknown): Progress {
  const value = parseJson(s);
  // A run that never reported progress has BullMQ's 0: no need for a failed parse (they are slow).
  if (typeof value !== 'object' || value === null) return { fraction: 0, text: null };
  const parsed = progressShape.safeParse(value);
  return parsed.success ? parsed.data : { fraction: 0, text: null };
}

/** The error of an attempt BullMQ ended without jobhost's record (a deferred failure, too many stalls). */
function foreignError(reason: string | null): RunError {
  if (reason === CANCELED_REASON) return { code: 'CANCELED', message: 'canceled by request' };
  return { code: 'INTERRUPTED', message: reason ?? 'the attempt ended without a record' };
}

/** The run a BullMQ job hash describes. */
export function runFromFields(f: JobFields): Run {
  const data: JobData = jobDataOf(parseJson(f.data)) ?? {
    params: null,
    source: 'api',
    key: null,
    queue: 'default',
    priority: 0,
    runAt: num(f.timestamp) ?? 0,
    retryOf: null,
    event: null,
  };
  const opts = parseJson(f.opts) as { attempts?: unknown } | null;
  const maxAttempts = typeof opts?.attempts === 'number' ? opts.attempts : 1;
  const records = attemptsOf(f.stacktrace);
  const attempts = records.map(toAttempt);
  const processedOn = num(f.processedOn);
  const finishedOn = num(f.finishedOn);
  const made = num(f.attemptsMade) ?? 0;
  if (f.status === 'running' && processedOn !== null) {
    attempts.push({ n: made + 1, startedAt: isoTime(processedOn), endedAt: null, error: null });
  } else if (f.status === 'succeeded' && processedOn !== null) {
    attempts.push({
      n: Math.max(made, records.length + 1),
      startedAt: isoTime(processedOn),
      endedAt: finishedOn === null ? null : isoTime(finishedOn),
      error: null,
    });
  } else if ((f.status === 'failed' || f.status === 'canceled') && records.length < made && processedOn !== null) {
    attempts.push({ n: made, startedAt: isoTime(processedOn), endedAt: finishedOn === null ? null : isoTime(finishedOn), error: foreignError(f.failedReason) });
  }
  // The record that made the run wait again (a retry): not the end of a failed or canceled run,
  // whose delay is 0 and would make `runAt` its end, after its start.
  const ended = (f.status === 'failed' || f.status === 'canceled') && records.length >= made;
  const last = ended ? records.at(-2) : records.at(-1);
  const createdMs = num(f.timestamp) ?? data.runAt;
  let runAt = data.runAt;
  if (f.delayedAt !== null) runAt = f.delayedAt;
  else if (last && last.d >= 0) runAt = last.e + last.d;
  const firstStart = records[0]?.s ?? (attempts[0] ? processedOn : null);
  const createdAt = isoTime(createdMs);
  const final = f.status === 'succeeded' || f.status === 'failed' || f.status === 'canceled';
  const run: Run = {
    id: f.id,
    job: f.job,
    status: f.status,
    source: data.source,
    params: data.params,
    priority: data.priority,
    key: data.key,
    queue: data.queue,
    createdAt,
    runAt: runAt === createdMs ? createdAt : isoTime(runAt),
    startedAt: attempts[0]?.startedAt ?? null,
    endedAt: final && finishedOn !== null ? isoTime(finishedOn) : null,
    durationMs: final && finishedOn !== null && firstStart !== null ? Math.max(0, finishedOn - firstStart) : null,
    progress: progressOf(f.progress),
    attempts,
    maxAttempts,
    result: f.status === 'succeeded' ? parseJson(f.returnvalue) : null,
    error: f.status === 'failed' || f.status === 'canceled' ? (attempts.at(-1)?.error ?? foreignError(f.failedReason)) : null,
    retryOf: data.retryOf,
    event: data.event,
    host: f.processedBy,
  };
  if (data.origin !== undefined) run.origin = data.origin;
  if (data.after !== undefined) run.after = data.after;
  if (data.traceparent !== undefined) {
    run.traceId = data.traceparent.slice(3, 35);
    run.traceparent = data.traceparent;
  }
  return run;
}

const itemShape = z.array(z.union([z.string(), z.boolean()])).min(2);
const runStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']);

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** A run from one item of the history scripts (`scripts.ts`: ITEM): a job hash, or a tombstone's JSON. */
export function runFromItem(json: string): Run | null {
  const parsed = itemShape.safeParse(parseJson(json));
  if (!parsed.success) return null;
  const item = parsed.data;
  if (item[0] === 't') {
    const run = parseJson(str(item[1])) as Run | null;
    return run && typeof run === 'object' && typeof run.id === 'string' ? run : null;
  }
  const status = runStatus.safeParse(item[3]);
  if (item[0] !== 'h' || item.length < 18 || !status.success) return null;
  const v = (i: number): string | null => str(item[i]);
  return runFromFields({
    id: v(1) ?? '',
    job: v(2) ?? '',
    status: status.data,
    delayedAt: num(v(4)),
    data: v(5),
    opts: v(6),
    timestamp: v(7),
    processedOn: v(8),
    finishedOn: v(9),
    returnvalue: v(10),
    failedReason: v(11),
    stacktrace: v(12),
    attemptsMade: v(13),
    progress: v(15),
    processedBy: v(16),
  });
}

/** A fetched BullMQ job's run, before its attempt starts (status `queued`) or after BullMQ ended it. */
export function runFromJob(job: Job, status: RunStatus): Run {
  return runFromFields({
    id: job.id ?? '',
    job: job.name,
    status,
    delayedAt: null,
    data: job.data,
    opts: job.opts,
    timestamp: job.timestamp,
    processedOn: job.processedOn ?? null,
    finishedOn: job.finishedOn ?? null,
    returnvalue: null,
    failedReason: job.failedReason ?? null,
    stacktrace: job.stacktrace,
    attemptsMade: job.attemptsMade,
    progress: job.progress,
    processedBy: job.processedBy ?? null,
  });
}
