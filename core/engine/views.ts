import { isoTime } from '../contract/clock.js';
import type { HostState } from './host.js';
import { paramsJsonSchema, percentile, type EffectiveJob } from './jobs.js';
import type { RunStatus } from '../contract/run.js';
import { scheduleText } from '../schedule/schedule-text.js';
import type { JobRecord, StoreStats } from '../store/store.js';

/** What the host shows of itself: job views (`GET /jobs`), stats (`GET /stats`), stale jobs (`/ready`). */

/** A job as `GET /jobs` shows it (SPEC §6). */
export interface JobView {
  name: string;
  description: string;
  schedule: string | null;
  /** The schedule in words ("At 07:00", "Every 15 minutes"); null for trigger-only jobs. */
  scheduleText: string | null;
  timezone: string;
  enabled: boolean;
  file: string | null;
  nextRun: string | null;
  lastRun: { runId: string; status: RunStatus; at: string } | null;
  lastSuccessAt: string | null;
  counts: { succeeded: number; failed: number; canceled: number; queued: number; running: number };
  paramsSchema: unknown;
  paramDefaults: Record<string, unknown>;
  queue: string;
  concurrency: number;
  overlap: 'skip' | 'queue' | 'allow';
  retry: { attempts: number; backoff: string; delayMs: number; maxDelayMs: number; jitter: number };
  timeoutMs: number;
  cooldownMs: number;
  once: boolean;
  catchUp: boolean;
  on: Array<{ event: string; delayMs: number }>;
  notify: unknown;
}

export interface JobStats {
  count: number;
  succeeded: number;
  failed: number;
  canceled: number;
  successRate: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  lastRun: JobView['lastRun'];
}

export interface Stats {
  state: HostState;
  totals: { runs: number; succeeded: number; failed: number; canceled: number; queued: number; delayed: number; running: number };
  successRate: number | null;
  jobs: { total: number; enabled: number; running: number; scheduled: number };
  perJob: Record<string, JobStats>;
  queues: Record<string, number>;
  store: StoreStats;
  events: { seq: number };
}

/** A scheduled job overdue for a success (see `Host.staleJobs()`). */
export interface StaleJob {
  job: string;
  schedule: string;
  periodMs: number;
  lastSuccessAt: string | null;
}

export function jobView(job: EffectiveJob, record: JobRecord, live: { nextRun: number | null; active: number; running: number }): JobView {
  return {
    name: job.name,
    description: job.description,
    schedule: job.schedule?.label ?? null,
    scheduleText: scheduleText(job.scheduleSpec),
    timezone: job.timezone,
    enabled: job.enabled,
    file: job.file,
    nextRun: live.nextRun === null ? null : isoTime(live.nextRun),
    lastRun: record.lastRun ? { ...record.lastRun } : null,
    lastSuccessAt: record.lastSuccessAt ?? null,
    counts: {
      succeeded: record.counts?.succeeded ?? 0,
      failed: record.counts?.failed ?? 0,
      canceled: record.counts?.canceled ?? 0,
      queued: live.active - live.running,
      running: live.running,
    },
    paramsSchema: paramsJsonSchema(job.paramsSchema),
    paramDefaults: { ...job.paramDefaults },
    queue: job.queue,
    concurrency: job.concurrency,
    overlap: job.overlap,
    retry: { ...job.retry },
    timeoutMs: job.timeoutMs,
    cooldownMs: job.cooldownMs,
    once: job.once,
    catchUp: job.catchUp,
    on: job.on.map((o) => ({ ...o })),
    notify: job.notify ? structuredClone(job.notify) : null,
  };
}

/** Per-job and total counts from the job records (lifetime), durations from the recent ones. */
export function runStats(records: ReadonlyMap<string, JobRecord>, names: Iterable<string>): { perJob: Record<string, JobStats>; succeeded: number; failed: number; canceled: number } {
  const perJob: Record<string, JobStats> = {};
  let succeeded = 0;
  let failed = 0;
  let canceled = 0;
  for (const name of [...new Set(names)].sort()) {
    const r = records.get(name) ?? {};
    const s = r.counts?.succeeded ?? 0;
    const f = r.counts?.failed ?? 0;
    const c = r.counts?.canceled ?? 0;
    succeeded += s;
    failed += f;
    canceled += c;
    perJob[name] = {
      count: s + f + c,
      succeeded: s,
      failed: f,
      canceled: c,
      successRate: s + f > 0 ? s / (s + f) : null,
      p50Ms: percentile(r.durations ?? [], 50),
      p95Ms: percentile(r.durations ?? [], 95),
      lastRun: r.lastRun ? { ...r.lastRun } : null,
    };
  }
  return { perJob, succeeded, failed, canceled };
}

/**
 * Whether an enabled scheduled job has had no success within twice its period (the gap between
 * its next two fires); a job that never succeeded counts from `since`.
 */
export function staleness(job: EffectiveJob, record: JobRecord, registeredAt: number, now: number): StaleJob | null {
  if (!job.enabled || !job.schedule) return null;
  let periodMs: number;
  try {
    const first = job.schedule.next(now);
    const second = first === null ? null : job.schedule.next(first);
    if (first === null || second === null) return null;
    periodMs = second - first;
  } catch {
    return null; // the scheduler logs a schedule that cannot compute its next fire
  }
  const lastSuccessAt = record.lastSuccessAt ?? null;
  const since = lastSuccessAt !== null ? Date.parse(lastSuccessAt) : registeredAt;
  return now - since > 2 * periodMs ? { job: job.name, schedule: job.schedule.label, periodMs, lastSuccessAt } : null;
}
