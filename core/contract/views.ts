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
  /** Its runs are held (SPEC §13): the job or its queue is paused; `pause` says which. */
  paused: boolean;
  pause: { job: boolean; queue: boolean };
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
  /** SPEC §13: its limit and the waiting runs it holds back now (`waiting`); null: none. */
  rateLimit: { max: number; perMs: number; waiting: number } | null;
  /** SPEC §13: null when triggers are not debounced. */
  debounceMs: number | null;
  /** SPEC §13: the ends that trigger a run of this job (the plugin's list, or the config's in its place). */
  after: Array<{ job: string; status: 'succeeded' | 'failed' | 'canceled' | 'finished' }>;
  /** Where its alert rules stand (SPEC §12). */
  alert: JobAlertState;
}

/** A job's alert state: its failure streak, whether an incident is open (a notified streak not yet recovered), its last missed fire. */
export interface JobAlertState {
  failStreak: number;
  /** The streak reached `after` (1 by default) with `failed` notified: a `recovered` is due at the next success. */
  open: boolean;
  /** The streak the last success ended. */
  lastRecoveredStreak: number;
  /** The latest schedule fire the `missed` rule accounted for (notified, or part of a disabled stretch). */
  missedThrough: string | null;
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
  /** Cluster mode: events and log lines dropped while Redis did not take them (a bounded backlog). */
  relayDropped?: number;
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

/** The windows of `GET /stats/series` and their buckets: 1 min for 1 h, 15 min for 24 h, 2 h for 7 d. */
export const SERIES_WINDOWS = {
  '1h': { bucketMs: 60_000, buckets: 60 },
  '24h': { bucketMs: 900_000, buckets: 96 },
  '7d': { bucketMs: 7_200_000, buckets: 84 },
} as const;

export type SeriesWindow = keyof typeof SERIES_WINDOWS;

/** One bucket of a series: runs that finished in it, and the backlog at its end. */
export interface SeriesBucket {
  /** ISO start; the bucket ends where the next one starts (the last one is still filling). */
  start: string;
  succeeded: number;
  failed: number;
  canceled: number;
  /** Duration percentiles of the succeeded and failed runs (within 2%); null without any. */
  p50Ms: number | null;
  p95Ms: number | null;
  /** Runs waiting (queued or delayed) at the bucket's end; null before the host was watching. */
  queued: number | null;
}

/** `GET /stats/series`: the buckets of a window, oldest first, for the host or one job. */
export interface Series {
  window: SeriesWindow;
  job: string | null;
  bucketMs: number;
  /** Start of the first bucket and end of the last (now, rounded up to the bucket). */
  from: string;
  to: string;
  /** From when the host has watched runs finish; earlier buckets come from history read back at start. */
  watchingSince: string;
  buckets: SeriesBucket[];
}

/** Which runs a bulk action takes: of one job or all, within a time range (ISO, both ends included). */
export interface BulkFilter {
  job?: string | undefined;
  from?: string | undefined;
  /** Default: now. The answer says which `to` it used, so a confirmation can repeat it exactly. */
  to?: string | undefined;
  /** Count and list the runs, touch nothing. */
  dryRun?: boolean | undefined;
  /** Only runs of jobs this allows (a token limited to some jobs); the others are counted in `excluded`. */
  allow?: ((job: string) => boolean) | undefined;
}

/** The answer of a bulk action: which runs it matched, which it touched, and why it left any. */
export interface BulkResult {
  action: 'retry' | 'cancel';
  dryRun: boolean;
  job: string | null;
  from: string | null;
  to: string;
  /** Runs the filter matched (at most `BULK_MAX`; `truncated` when there were more). */
  matched: number;
  /** Runs retried (a new run each) or canceled; 0 for a dry run. */
  touched: number;
  runs: Array<{ runId: string; job: string; newRunId?: string }>;
  /** Matched runs that were not touched: the code says why (SKIPPED, RUN_FINISHED, ...). */
  errors: Array<{ runId: string; job: string; code: string; message: string }>;
  truncated: boolean;
  /** Runs the filter matched but `allow` left out, and their jobs (with `allow` only). */
  excluded?: { runs: number; jobs: string[] };
}

/** The most runs one bulk action takes. */
export const BULK_MAX = 10_000;

/** A host as `GET /cluster` shows it (SPEC §11): as it last told the others (its heartbeat). */
export interface ClusterHost {
  id: string;
  /** Its API's base URL, null before it listens (or when it serves no HTTP). */
  url: string | null;
  startedAt: string;
  lastSeen: string;
  /** Runs running on it now. */
  running: number;
  /** The jobs it has loaded, each with the version of its definition (a hash: equal means the same job). */
  jobs: Array<{ name: string; version: string }>;
  /** The notification destinations its config names (absent from a host of an older version): a delivery goes to a host that has its destination. */
  destinations?: string[] | undefined;
}

/** `GET /cluster`: the live hosts, and the jobs whose definition differs between them. */
export interface ClusterView {
  backend: 'local' | 'redis';
  self: string;
  hosts: ClusterHost[];
  /** Jobs loaded on several live hosts with different definitions: `hosts` has them, `versions` each one's. */
  drift: Array<{ job: string; hosts: string[]; versions: Record<string, string> }>;
}
