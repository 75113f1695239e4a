import type { RunStatus } from './run.js';

/** What the host shows of itself: the shapes of `GET /jobs`, `GET /stats` and `/ready`'s stale jobs. */

export type HostState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

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
  /** Where its handler runs: `worker` (a worker thread) or `inline` (the host's main thread). */
  isolation: 'worker' | 'inline';
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

/** What the backend reports of its records (the local one: its files). */
export interface BackendStats {
  liveRuns: number;
  historyRuns: number;
  segments: number;
  commits: number;
}

export interface Stats {
  state: HostState;
  totals: { runs: number; succeeded: number; failed: number; canceled: number; queued: number; delayed: number; running: number };
  successRate: number | null;
  jobs: { total: number; enabled: number; running: number; scheduled: number };
  perJob: Record<string, JobStats>;
  queues: Record<string, number>;
  store: BackendStats;
  events: { seq: number };
}

/** A scheduled job overdue for a success (see `Host.staleJobs()`). */
export interface StaleJob {
  job: string;
  schedule: string;
  periodMs: number;
  lastSuccessAt: string | null;
}
