import type { AuditRecord } from '../contract/audit.js';
import type { Backend, ScheduleFire } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import { type Duration, parseDuration } from '../contract/duration.js';
import { HostError, isHostError, toRunError } from '../contract/errors.js';
import type { SkipReason } from '../contract/events.js';
import { overBytes, tooLarge } from '../contract/limits.js';
import { issueKeys, type ParamsResult } from '../contract/plugin.js';
import { eventNameSchema } from '../contract/plugin-schema.js';
import type { Run, RunSource, TriggerResult } from '../contract/run.js';
import { startTriggerSpan } from '../contract/tracing.js';
import type { Bus } from './bus.js';
import { fireRunId } from './ids.js';
import type { EffectiveJob } from './jobs.js';
import type { JobRegistry } from './registry.js';

/**
 * The trigger path: are the params valid, what run to create, and the backend's word on whether
 * the job takes it (admission and the add are one step there). Triggers, app events and replays
 * of failed runs all come through here.
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
  /** The request's audit record (SPEC §14): kept with the run, in its write, only when the run is accepted. */
  audit?: AuditRecord | undefined;
}

export type { TriggerResult };

export interface PublishResult {
  enqueued: string[];
  skipped: Array<{ job: string; reason: SkipReason }>;
  errors: Array<{ job: string; code: string; message: string }>;
  /** Jobs listening to the event that `allow` left out (a token limited to other jobs published it). */
  excluded?: string[];
}

export interface PublishOptions {
  /** Only jobs this allows are triggered; the others are listed in `excluded`. */
  allow?: ((job: string) => boolean) | undefined;
  /** The payload was measured already where it became JSON (`ctx.emit`): not measured again. */
  measured?: boolean | undefined;
}

/** How long a client refused with QUEUE_FULL is told to wait (`Retry-After`, seconds). */
const QUEUE_FULL_RETRY_S = 5;

/** The validated params of a trigger, or INVALID_PARAMS listing every issue (PARAMS_TOO_LARGE past `maxBytes`). */
function checkedParams(result: ParamsResult<unknown>, maxBytes: number): unknown {
  if (result.issues) {
    const issues = result.issues.map((i) => ({
      path: issueKeys(i).join('.'),
      message: i.message,
    }));
    const first = issues[0];
    throw new HostError('INVALID_PARAMS', `params${first?.path ? '.' + first.path : ''}: ${first?.message ?? 'invalid'}`, { issues });
  }
  const params = result.value;
  if (params === undefined) return {};
  let json: string | undefined;
  try {
    // Runs are stored as JSON: refuse what would not survive it, before it is acknowledged.
    json = JSON.stringify(params);
  } catch (err) {
    throw new HostError('INVALID_PARAMS', `params: not JSON-serializable (${(err as Error).message})`, { issues: [] });
  }
  // The same text measures the params: what a run keeps in memory and on disk is bounded.
  if (json !== undefined && overBytes(json, maxBytes)) throw tooLarge('PARAMS_TOO_LARGE', 'params', json, maxBytes, 'limits.maxParamsBytes');
  return params;
}

/**
 * Params merged over the job's config defaults and checked by its schema. A promise only when
 * the schema validates asynchronously, so the common path stays synchronous.
 */
export function validateParams(job: EffectiveJob, input: unknown, maxBytes = Number.POSITIVE_INFINITY): unknown {
  let params = input;
  const isObject = typeof params === 'object' && params !== null && !Array.isArray(params);
  if (params !== undefined && !isObject && !job.paramsSchema) {
    throw new HostError('INVALID_PARAMS', 'params: expected an object', { issues: [{ path: '', message: 'expected an object' }] });
  }
  if (Object.keys(job.paramDefaults).length > 0 && (params === undefined || isObject)) {
    params = { ...job.paramDefaults, ...(params as object | undefined) };
  }
  if (job.paramsSchema) {
    let result: ReturnType<(typeof job.paramsSchema)['~standard']['validate']>;
    try {
      result = job.paramsSchema['~standard'].validate(params ?? {});
    } catch (err) {
      throw schemaThrew(err);
    }
    if (result instanceof Promise) {
      return result.then(
        (r) => checkedParams(r, maxBytes),
        (err: unknown) => {
          throw schemaThrew(err);
        },
      );
    }
    return checkedParams(result, maxBytes);
  }
  return checkedParams({ value: params }, maxBytes);
}

/** A params schema that throws (a refine or transform of the plugin's) refuses the params: the trigger is a 400, not a 500. */
function schemaThrew(err: unknown): HostError {
  const message = (err instanceof Error ? err.message : String(err)).slice(0, 500);
  return new HostError('INVALID_PARAMS', `params: the params schema threw: ${message}`, { issues: [{ path: '', message }] });
}

/** EVENT_TOO_LARGE when an app event's payload is larger as JSON than `maxBytes`; one that is not JSON is left to each run's params check. */
function checkEventSize(payload: unknown, maxBytes: number): void {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch {
    return;
  }
  if (json !== undefined && overBytes(json, maxBytes)) throw tooLarge('EVENT_TOO_LARGE', 'the event payload', json, maxBytes, 'limits.maxEventBytes');
}

/** A trigger option the caller got wrong: INVALID_BODY with `issues`, as a body the schema refuses has them. */
function badOption(path: string, message: string): HostError {
  return new HostError('INVALID_BODY', `${path}: ${message}`, { issues: [{ path, message }] });
}

/** A `runAt` string: an ISO 8601 date, or date and time (an offset or `Z`; without one, local time, as Date reads it). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** The latest `runAt` accepted: the last millisecond an ISO time with a 4-digit year can show. */
const LATEST_RUN_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Checks a trigger's key, priority and timing and builds the queued run. */
export function buildRun(job: EffectiveJob, params: unknown, options: TriggerOptions, source: RunSource, now: number, id: string, extra?: Partial<Run>): Run {
  const key = options.key ?? null;
  if (key !== null && (typeof key !== 'string' || key.length === 0 || key.length > 500)) {
    throw badOption('key', 'expected a string of 1 to 500 characters');
  }
  const priority = options.priority ?? 0;
  if (!Number.isInteger(priority) || Math.abs(priority) > 1_000_000) {
    throw badOption('priority', 'expected an integer between -1000000 and 1000000');
  }
  let runAtMs = now;
  if (options.runAt !== undefined && options.delay !== undefined) throw badOption('runAt', 'give delay or runAt, not both');
  if (options.runAt !== undefined) {
    const at = options.runAt;
    if (typeof at === 'string' && !ISO_TIME.test(at)) throw badOption('runAt', `not an ISO 8601 time such as 2026-01-05T12:00:00Z: ${at.slice(0, 100)}`);
    if (typeof at === 'number' && at < 0) throw badOption('runAt', `ms since the epoch cannot be negative: ${at}`);
    runAtMs = at instanceof Date ? at.getTime() : typeof at === 'number' ? at : Date.parse(at);
    if (!Number.isFinite(runAtMs)) throw badOption('runAt', `not a valid time: ${String(at).slice(0, 100)}`);
    if (runAtMs > LATEST_RUN_AT) throw badOption('runAt', `${String(at).slice(0, 100)} is later than 9999-12-31`);
    runAtMs = Math.max(runAtMs, now);
  } else if (options.delay !== undefined) {
    runAtMs = now + parseDuration(options.delay, 'delay');
  }
  // A debounced run waits out its window (a later trigger of its key moves it on: SPEC §13); a replay does not.
  if (job.debounceMs && source !== 'retry') runAtMs = Math.max(runAtMs, now + job.debounceMs);
  const createdAt = isoTime(now);
  const run: Run = {
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
  };
  // Not a spread in the literal: that builds every run through the slow generic copy, extra or not.
  return extra === undefined ? run : Object.assign(run, extra);
}

export interface TriggersOptions {
  bus: Bus;
  clock: Clock;
  registry: JobRegistry;
  backend: Backend;
  newId: () => string;
  /** `limits` of the config in effect (read on each trigger: an edit applies to the next one). */
  limits(): Config['limits'];
  /** Throws SHUTTING_DOWN or NOT_STARTED unless the host takes new work. */
  accepting(): void;
}

export class Triggers {
  readonly #o: TriggersOptions;

  constructor(options: TriggersOptions) {
    this.#o = options;
  }

  /**
   * Creates a run of `name`; resolves with its id once it is durable. Rejects with JOB_NOT_FOUND,
   * INVALID_PARAMS, PARAMS_TOO_LARGE, INVALID_BODY, SKIPPED (`details.reason`, after `run.skipped`),
   * QUEUE_FULL (a schedule fire past `limits.maxQueued` is SKIPPED `queue-full` instead) or SHUTTING_DOWN.
   * One async step from the caller to the backend's acknowledgement: a trigger is the hot path,
   * and every promise pays for the async hooks that tie a handler's stray rejections to it.
   * `fire` (a schedule fire on a shared backend): the run's id comes from the fire time, and a
   * fire another host ran already rejects with SKIPPED (`details.reason` `fired`), no event.
   */
  async create(name: string, options: TriggerOptions, source: RunSource, extra?: Partial<Run>, fire?: ScheduleFire): Promise<TriggerResult> {
    // A run `after` triggers is part of its parent's end, which a stop lets finish (after.ts).
    if (source !== 'after') this.#o.accepting();
    const job = this.#o.registry.get(name)?.job;
    if (!job) throw new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
    const limits = this.#o.limits();
    // Before the params are checked: a full queue refuses at the cost of one read. Not a run `after`
    // triggers: part of its parent's end (no caller to retry it), it would be lost, as in cluster
    // mode, where the end's write adds it.
    if (this.#o.backend.waiting() >= limits.maxQueued && source !== 'after') this.#queueFull(job.name, source, limits.maxQueued);
    let params: unknown;
    try {
      const checked = validateParams(job, options.params, limits.maxParamsBytes);
      params = checked instanceof Promise ? await checked : checked;
    } catch (err) {
      // A fire has no caller to answer: its refusal is an event the WebSocket and dashboard show (a
      // `jobs.<name>.params` the schema refuses fails every fire the same way). On a shared backend
      // every host fires every schedule, and each would tell it: there the log line says it.
      if ((source === 'schedule' || source === 'catch-up') && !this.#o.backend.shared && isHostError(err) && err.code === 'INVALID_PARAMS') {
        this.#o.bus.emit('run.skipped', { job: job.name, reason: 'invalid-params', source, detail: err.message });
      }
      throw err;
    }
    // While the backend cannot write (a full disk, Redis out of reach), a run would only live in
    // memory: refuse it with a time to retry rather than queue work that cannot be acknowledged.
    this.#writable();
    const id = fire ? fireRunId(job.name, fire.at) : (extra?.id ?? this.#o.newId());
    // The run's span (SPEC §15), under the caller's context: its attempts' spans are its children.
    const span = startTriggerSpan(job.name, source);
    let refused: Awaited<ReturnType<Backend['add']>>;
    try {
      const traced = span.fields.traceparent === undefined ? extra : { ...extra, ...span.fields };
      const run = buildRun(job, params, options, source, this.#o.clock.now(), id, traced);
      // A replay (a run's retry, one at a time or in bulk) replays that run: its own run, never
      // merged into a debounce window (a bulk retry's replays would overwrite each other there).
      const rules = source === 'retry' && job.debounceMs ? { ...job, debounceMs: 0 } : job;
      refused = await this.#o.backend.add(run, rules, fire, options.audit);
    } catch (err) {
      span.end(toRunError(err));
      throw err;
    }
    if (refused && refused.reason !== 'debounced') span.end({ code: 'SKIPPED', message: `${refused.reason}: ${refused.detail}` });
    else span.end(undefined, refused?.runId ?? id);
    // Merged into the job's waiting debounced run: accepted, answered with that run's id.
    if (refused?.reason === 'debounced') return { runId: refused.runId ?? id };
    if (refused?.reason === 'fired') throw new HostError('SKIPPED', `fired: ${refused.detail}`, { reason: 'fired', job: job.name });
    if (refused) {
      const runId = refused.runId !== undefined ? { runId: refused.runId } : {};
      this.#o.bus.emit('run.skipped', { job: job.name, reason: refused.reason, source, detail: refused.detail, ...runId });
      throw new HostError('SKIPPED', `${refused.reason}: ${refused.detail}`, { reason: refused.reason, job: job.name, ...runId });
    }
    return { runId: id };
  }

  /**
   * Publishes an app event: every job with a matching `on` is triggered with the payload as params.
   * Rejects with EVENT_TOO_LARGE past `limits.maxEventBytes` (`options.measured`: `ctx.emit` checked
   * it where the payload became JSON) and QUEUE_FULL when a subscriber's run would pass
   * `limits.maxQueued`. `options.allow`: the jobs the caller may trigger (the others are `excluded`).
   */
  async publish(event: string, payload?: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    // A name no job could list (`on` takes eventNameSchema's): a typo such as '' would reach nobody, silently.
    const name = eventNameSchema.safeParse(event);
    if (!name.success)
      throw new HostError(
        'INVALID_BODY',
        `event: ${name.error.issues[0]?.message ?? 'expected an event name'} (got ${JSON.stringify(String(event).slice(0, 50))})`,
        {
          issues: [{ path: 'event', message: name.error.issues[0]?.message ?? 'invalid' }],
        },
      );
    this.#o.accepting();
    this.#writable();
    const limits = this.#o.limits();
    if (!options.measured) checkEventSize(payload, limits.maxEventBytes);
    const subscribers = this.#o.registry.subscribers(event);
    // The whole event is refused, not each of its runs: nothing was enqueued, the client retries it.
    if (subscribers.length > 0 && this.#o.backend.waiting() >= limits.maxQueued) this.#queueFull(subscribers[0]!.job, 'event', limits.maxQueued);
    const result: PublishResult = { enqueued: [], skipped: [], errors: [] };
    for (const sub of subscribers) {
      if (options.allow && !options.allow(sub.job)) {
        (result.excluded ??= []).push(sub.job);
        continue;
      }
      try {
        const { runId } = await this.create(sub.job, { params: payload, delay: sub.delayMs }, 'event', { event });
        result.enqueued.push(runId);
      } catch (err) {
        if (isHostError(err) && err.code === 'SKIPPED') result.skipped.push({ job: sub.job, reason: err.details?.['reason'] as SkipReason });
        else if (isHostError(err)) result.errors.push({ job: sub.job, code: err.code, message: err.message });
        else throw err;
      }
    }
    return result;
  }

  /** Refuses a trigger past `limits.maxQueued`: a schedule fire is skipped (it comes again), anything else gets a 503 to retry. */
  #queueFull(job: string, source: RunSource, max: number): never {
    const detail = `${max} runs are waiting (limits.maxQueued)`;
    if (source === 'schedule' || source === 'catch-up') {
      this.#o.bus.emit('run.skipped', { job, reason: 'queue-full', source, detail });
      throw new HostError('SKIPPED', `queue-full: ${detail}`, { reason: 'queue-full', job });
    }
    throw new HostError('QUEUE_FULL', `the host's queue is full: ${detail}; retry later`, { job, maxQueued: max, retryAfter: QUEUE_FULL_RETRY_S });
  }

  #writable(): void {
    const unavailable = this.#o.backend.unavailable();
    if (unavailable) throw unavailable;
  }

  /** Replays a failed or canceled run as a new run (source `retry`). */
  async retry(id: string): Promise<TriggerResult> {
    const old = await this.#o.backend.getRun(id);
    if (!old) throw new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id });
    if (old.status !== 'failed' && old.status !== 'canceled') {
      throw new HostError('RUN_NOT_RETRYABLE', `run ${id} is ${old.status}; only failed or canceled runs can be retried`, { runId: id });
    }
    // A debounced job's key names a window, which a replay (a run of its own) does not join: as a
    // dedup key it would refuse the replay while the window is open, or a second replay of that key.
    const key = this.#o.registry.get(old.job)?.job.debounceMs ? undefined : (old.key ?? undefined);
    return this.create(old.job, { params: old.params, priority: old.priority, key }, 'retry', { retryOf: id });
  }
}
