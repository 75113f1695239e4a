import type { Duration } from './duration.js';
import type { Logger } from './logger.js';
import type { NotifyPriority, NotifyStatus } from './notification.js';
import type { Isolation } from './plugin-source.js';
import type { Page, Run, RunStatus } from './run.js';
import type { Stats } from './views.js';

/**
 * A params schema: zod, or any Standard Schema (valibot, arktype...). zod schemas also give the
 * job a JSON Schema for the dashboard and the API.
 */
export interface ParamsSchema<Out = unknown> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => ParamsResult<Out> | Promise<ParamsResult<Out>>;
    readonly types?: { readonly input: unknown; readonly output: Out } | undefined;
  };
}

export type ParamsResult<Out> =
  | { readonly value: Out; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined }> };

/** An issue's path as keys (a Standard Schema path segment is a key or `{ key }`). */
export function issueKeys(issue: { readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined }): string[] {
  return (issue.path ?? []).map((p) => String(typeof p === 'object' && p !== null ? p.key : p));
}

type InferParams<S> = S extends ParamsSchema<infer O> ? O : Record<string, unknown>;

/**
 * Read access to the host's history, for handlers that report on it (e.g. a daily digest). In a
 * worker thread every method answers asynchronously (the main thread holds the history): `await`
 * each, which works inline too.
 */
export interface HostReader {
  runs(query?: { job?: string; status?: RunStatus; limit?: number; before?: string }): Promise<Page<Run>>;
  run(id: string): Promise<Run | undefined>;
  /** A promise in a worker thread; the value itself inline. */
  stats(): Stats | Promise<Stats>;
}

/** What a handler receives for one attempt. */
export interface JobContext<P = Record<string, unknown>> {
  runId: string;
  job: string;
  /** 1 for the first attempt, 2 for the first retry, ... */
  attempt: number;
  params: P;
  /** Aborted on timeout, cancel or shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  log: Logger;
  /** Reports progress: `fraction` is clamped to 0..1. */
  progress(fraction: number, text?: string): void;
  /** Publishes an app event on the bus, as `POST /events/:type` does. */
  emit(event: string, payload?: unknown): void;
  /** Read-only access to the host's run history and stats. */
  host: HostReader;
}

export interface NotifyOptions {
  /** Template: {{job}} {{runId}} {{status}} {{durationMs}} {{result.x}} {{error}} {{params.x}} */
  title?: string;
  message?: string;
  /** Use the rendered title as it is, with no " Completed"/" Failed" suffix. */
  customTitle?: boolean;
  /** Render the message from the template alone, without the default "Job x run y ..." sentence. */
  customMessage?: boolean;
  priority?: NotifyPriority;
  failurePriority?: NotifyPriority;
  tags?: string[];
  on?: NotifyStatus[];
  /** Destinations (config `notifications.destinations`) every notification of the job goes to, besides matching routes. */
  to?: string[];
  /** With `on: ['slow']`: a run still running this long after it started is notified, once. */
  slowerThan?: Duration;
  /** With `on: ['missed']`: a schedule fire that started no run within this (default: one period, at most 1h). */
  missedAfter?: Duration;
  /** Failure notifications only from the N-th consecutive failed run on. */
  after?: number;
}

export interface RetryOptions {
  /** Total attempts, the first included (default 1: no retry). */
  attempts?: number;
  backoff?: 'fixed' | 'exponential';
  delay?: Duration;
  maxDelay?: Duration;
  /** Random spread applied to each delay, as a fraction (default 0.2 = ±20%). */
  jitter?: number;
}

/** The plugin contract (SPEC §2): one file's default export, or `host.register(plugin)`. */
export interface PluginDefinition<S extends ParamsSchema | undefined = ParamsSchema | undefined> {
  name: string;
  description?: string;
  /** Cron (5 or 6 fields, seconds first) or `{ every: '15m' }`; omit for trigger-only jobs. */
  schedule?: string | { every: Duration };
  timezone?: string;
  params?: S;
  on?: Array<string | { event: string; delay?: Duration }>;
  retry?: RetryOptions;
  timeout?: Duration;
  cooldown?: Duration;
  once?: boolean;
  overlap?: 'skip' | 'queue' | 'allow';
  concurrency?: number;
  queue?: string;
  catchUp?: boolean;
  /** Runs when a run of another job ends with a status (`succeeded` default; `failed`, `canceled`, `finished` = any), with params `{ runId, job, status, result }` of that run (SPEC §13). */
  after?: Array<string | { job: string; status?: 'succeeded' | 'failed' | 'canceled' | 'finished' }>;
  enabled?: boolean;
  /** `worker` (default): the handler runs in a worker thread; `inline`: in the host's main thread. */
  isolation?: Isolation;
  notify?: NotifyOptions;
  /** At most `max` runs start per window of `per`; the others wait (SPEC §13). */
  rateLimit?: { max: number; per: Duration };
  /** Triggers of one key within this quiet time become one run, with the last trigger's params (SPEC §13). */
  debounce?: Duration;
  handler: (ctx: JobContext<InferParams<S>>) => unknown;
}

/** Typed identity: infers `ctx.params` from the `params` schema. */
export function definePlugin<S extends ParamsSchema | undefined = undefined>(plugin: PluginDefinition<S>): PluginDefinition<S> {
  return plugin;
}
