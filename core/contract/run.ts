import type { RunError } from './errors.js';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
/** Every way a run is created (`after`: the end of another run, SPEC §13). */
export const RUN_SOURCES = ['schedule', 'http', 'event', 'retry', 'recovery', 'catch-up', 'api', 'after'] as const;
export type RunSource = (typeof RUN_SOURCES)[number];
export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'canceled']);

export interface Attempt {
  n: number;
  startedAt: string;
  endedAt: string | null;
  error: RunError | null;
}

export interface Progress {
  fraction: number;
  text: string | null;
}

/** A run as it is stored and served (SPEC §6). Times are ISO strings. */
export interface Run {
  id: string;
  job: string;
  status: RunStatus;
  source: RunSource;
  params: unknown;
  priority: number;
  key: string | null;
  queue: string;
  createdAt: string;
  runAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  progress: Progress;
  attempts: Attempt[];
  maxAttempts: number;
  result: unknown;
  error: RunError | null;
  /** For a run created by `POST /runs/:id/retry`, the run it replays. */
  retryOf: string | null;
  /** The event that created the run, when `source` is `event`. */
  event: string | null;
  /** For a run created by the end of another (`source: 'after'`, SPEC §13): that run and its job. */
  after?: RunLink;
  /** For a run re-queued after a crash (`source: 'recovery'`), the source it was created with. */
  origin?: RunSource;
  /** The id of the host that ran (or runs) its latest attempt (`cluster.id`); null before it started. */
  host?: string | null;
  /** The trace the run belongs to (SPEC §15), when tracing is set up: its trigger's trace id. */
  traceId?: string;
  /** The W3C `traceparent` of the run's span: each attempt's span is its child. */
  traceparent?: string;
}

/** A run another run points at (`Run.after`). */
export interface RunLink {
  runId: string;
  job: string;
}

export function isFinal(status: RunStatus): boolean {
  return FINAL_STATUSES.has(status);
}

export interface RunQuery {
  job?: string | undefined;
  status?: RunStatus | undefined;
  limit?: number | undefined;
  /** Cursor: only runs with an id below this one (ids sort by creation time). */
  before?: string | undefined;
}

/** The answer to a trigger (`POST /jobs/:name/run`, `POST /runs/:id/retry`): the run it created. */
export interface TriggerResult {
  runId: string;
}

/** A page of a list, newest first; `next` is the cursor for the page after it. */
export interface Page<T> {
  items: T[];
  next?: string;
}
