import type { AttemptHandle, AttemptReporter, ExecutableJob } from '../contract/attempt.js';
import type { BackendHooks, Depths } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { Deadlines, type HeapItem } from '../contract/deadlines.js';
import { HostError, type RunError, toRunError } from '../contract/errors.js';
import type { NotifyStatus } from '../contract/notification.js';
import { nextProgress, type ProgressThrottle, throttleProgress } from '../contract/progress.js';
import { retryDelay } from '../contract/retry.js';
import type { Run } from '../contract/run.js';
import { Dispatcher, type Waiting } from './dispatcher.js';

/**
 * The local backend's runner: the life of a run from its add to its end. Its `Dispatcher` decides
 * when a run starts; the runner then records the attempt, hands it to the engine's executor,
 * enforces the per-attempt timeout, throttles progress, and on the outcome retries (with backoff
 * and jitter) or finishes the run. Cancel and shutdown abort attempts. It records through `save`
 * and reports each state change to the engine's observer; it knows nothing of cron, plugin files
 * or the disk.
 */

export interface RunnerOptions {
  clock: Clock;
  random: () => number;
  concurrency: number;
  queues: Record<string, number>;
  /** This host's id, recorded on each run it starts. */
  hostId: string;
  /** Records the run's current state; resolves once it is durable. */
  save(run: Run): Promise<void>;
  /** After `retrying` or a final state was reported: the backend folds the outcome, then the engine notifies. */
  settled(run: Run, outcome: NotifyStatus): void;
  /** Whether runs of the job (in that queue) are held (SPEC §13 pause): they park until `dispatch.unparkAll()`. */
  held?(job: string, queue: string): boolean;
}

/** The attempt's deadline (ms) is `heapKey` in the deadlines, at `heapIndex` (-1: none). */
interface Entry extends Waiting, HeapItem, ProgressThrottle {
  startedMs: number;
  /** The current attempt (1-based) and its handle while it runs. */
  attempt: number;
  handle: AttemptHandle | undefined;
  timeoutMs: number;
  job: ExecutableJob | undefined;
}

/** An entry while its attempt runs: what the executor is handed. */
type Running = Entry & { job: ExecutableJob };

export class Runner {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #save: (run: Run) => Promise<void>;
  readonly #settled: (run: Run, outcome: NotifyStatus) => void;
  readonly #hostId: string;
  #hooks: BackendHooks | undefined;
  /** Where the executor reports: one object per runner, not per attempt. */
  readonly #reporter: AttemptReporter<Running>;

  readonly #dispatch: Dispatcher<Entry>;
  /** Deadlines of running attempts: one timer for the earliest instead of one per attempt. */
  readonly #deadlines: Deadlines<Entry>;

  readonly #entries = new Map<string, Entry>();
  readonly #keys = new Map<string, Map<string, Entry>>();
  readonly #active = new Map<string, number>();

  constructor(options: RunnerOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#save = options.save;
    this.#settled = options.settled;
    this.#hostId = options.hostId;
    this.#dispatch = new Dispatcher<Entry>({
      clock: options.clock,
      concurrency: options.concurrency,
      queues: options.queues,
      job: (name) => {
        const job = this.#engine.job(name);
        return job && options.held?.(name, job.queue) ? undefined : job;
      },
      start: (entry, job) => this.#start(entry, job),
    });
    this.#reporter = {
      settled: (entry, result, error) => this.#settle(entry, result, error),
      progress: (entry, fraction, text) => this.#progress(entry, fraction, text),
    };
    this.#deadlines = new Deadlines<Entry>(options.clock, (entry) => {
      if (entry.state !== 'running') return;
      const err = new HostError('TIMEOUT', `attempt ${entry.attempt} timed out after ${entry.timeoutMs}ms`);
      entry.handle?.abort(err);
      this.#settle(entry, null, toRunError(err));
    });
  }

  /** The engine's side, from the backend's `open`. */
  attach(hooks: BackendHooks): void {
    this.#hooks = hooks;
  }

  get #engine(): BackendHooks {
    if (!this.#hooks) throw new Error('the runner has no engine attached (open the backend first)');
    return this.#hooks;
  }

  // ------------------------------------------------------------------- lifecycle and limits

  /** The dispatcher: start, pause, resume, limits and queue depths are its business. */
  get dispatch(): Dispatcher<Entry> {
    return this.#dispatch;
  }

  /** See `Backend.drain`. */
  async drain(graceMs: number): Promise<void> {
    this.#dispatch.halt();
    await this.#dispatch.idle(graceMs);
    for (const entry of [...this.#entries.values()]) {
      if (entry.state === 'running') this.#abortForShutdown(entry);
      entry.progressTimer?.cancel();
    }
    this.#deadlines.close();
    // A retry scheduled by an attempt that failed during the grace re-armed the delay timer; the
    // run stays queued with its runAt for the next start, and no timer may keep the process alive.
    this.#dispatch.stopped();
  }

  // ------------------------------------------------------------------- queries

  /** Queued or running runs of `job`. */
  activeCount(job: string): number {
    return this.#active.get(job) ?? 0;
  }

  /** Running runs of `job`. */
  runningCount(job: string): number {
    return this.#dispatch.runningCount(job);
  }

  /** The id of the queued or running run of `job` holding dedup `key`, if any. */
  byKey(job: string, key: string): string | undefined {
    return this.#keys.get(job)?.get(key)?.run.id;
  }

  /** An unfinished run (the live object: callers copy before handing it out). */
  get(id: string): Run | undefined {
    return this.#entries.get(id)?.run;
  }

  firstActive(job: string): string | undefined {
    for (const e of this.#entries.values()) if (e.run.job === job) return e.run.id;
    return undefined;
  }

  depths(): Depths {
    return this.#dispatch.depths(this.#entries.values());
  }

  /** Unfinished runs not running: ready, parked or delayed (O(1): `depths()` walks every entry). */
  waiting(): number {
    return this.#entries.size - this.#dispatch.running;
  }

  // ------------------------------------------------------------------- adding runs

  /**
   * Takes a queued run (new or recovered); returns the promise of it being durable. `runAtMs`
   * spares parsing `run.runAt` when the caller has the number at hand.
   */
  add(run: Run, runAtMs: number = Date.parse(run.runAt)): Promise<void> {
    const entry: Entry = {
      run,
      state: 'ready',
      runAtMs,
      startedMs: run.startedAt ? Date.parse(run.startedAt) : 0,
      attempt: 0,
      handle: undefined,
      heapKey: 0,
      heapIndex: -1,
      timeoutMs: 0,
      progressTimer: undefined,
      progressAt: 0,
      job: undefined,
    };
    this.#entries.set(run.id, entry);
    this.#active.set(run.job, (this.#active.get(run.job) ?? 0) + 1);
    if (run.key !== null) {
      let keys = this.#keys.get(run.job);
      if (!keys) this.#keys.set(run.job, (keys = new Map()));
      keys.set(run.key, entry);
    }
    if (!this.#dispatch.hasQueue(run.queue)) run.queue = 'default';
    this.#dispatch.enqueue(entry);
    return this.#save(run);
  }

  /**
   * A debounced run takes a later trigger's params, with what they came from (its source, event,
   * `after` parent, which the params of a chained run describe, the run it replays, its trace),
   * as the redis backend's merge gives the job the trigger's data, and waits until `runAtMs`
   * (never earlier than it waited); the promise of that being durable, or undefined when the run
   * no longer waits for its time.
   */
  postpone(id: string, from: Run, runAtMs: number): Promise<void> | undefined {
    const entry = this.#entries.get(id);
    // A run waiting for a retry has had its time: a trigger now opens a new window (as in cluster mode).
    if (entry?.state !== 'delayed' || entry.run.attempts.length > 0) return undefined;
    const run = entry.run;
    run.params = from.params;
    run.source = from.source;
    run.event = from.event;
    run.retryOf = from.retryOf;
    for (const key of ['after', 'origin', 'traceId', 'traceparent'] as const) {
      if (from[key] !== undefined) (run as unknown as Record<string, unknown>)[key] = from[key];
      else delete run[key];
    }
    // The time heap still holds the old time: at it the entry is put back for this one.
    if (runAtMs > entry.runAtMs) {
      entry.runAtMs = runAtMs;
      entry.run.runAt = isoTime(runAtMs);
    }
    return this.#save(entry.run);
  }

  /** The dispatcher gave `entry` a slot: its next attempt starts. */
  #start(entry: Entry, job: ExecutableJob): void {
    const run = entry.run;
    const now = this.#clock.now();
    const iso = isoTime(now);
    entry.state = 'running';
    entry.job = job;
    run.status = 'running';
    if (run.startedAt === null) {
      run.startedAt = iso;
      entry.startedMs = now;
    }
    const n = run.attempts.length + 1;
    // A new attempt starts from zero; the last one's progress stays visible until then.
    if (n > 1 && (run.progress.fraction !== 0 || run.progress.text !== null)) run.progress = { fraction: 0, text: null };
    run.attempts.push({ n, startedAt: iso, endedAt: null, error: null });
    run.host = this.#hostId;
    entry.attempt = n;
    void this.#save(run);
    const engine = this.#engine;
    engine.observer.started(run);
    if (job.timeoutMs > 0) {
      entry.timeoutMs = job.timeoutMs;
      this.#deadlines.set(entry, now + job.timeoutMs);
    }
    // The handle is set before the handler can settle: a synchronous handler reports at once.
    entry.handle = NO_HANDLE;
    const handle = engine.executor.execute(entry as Running, this.#reporter);
    if (entry.handle === NO_HANDLE) entry.handle = handle;
  }

  #progress(entry: Entry, fraction: number, text: string | undefined): void {
    if (entry.state !== 'running') return;
    entry.run.progress = nextProgress(entry.run.progress, fraction, text);
    throttleProgress(this.#clock, entry, () => {
      if (entry.state === 'running') this.#reportProgress(entry);
    });
  }

  #reportProgress(entry: Entry): void {
    void this.#save(entry.run);
    this.#engine.observer.progress(entry.run);
  }

  /** Ends the current attempt of a running entry with the executor's outcome. */
  #settle(entry: Entry, result: unknown, error: RunError | null): void {
    if (entry.state !== 'running') return;
    this.#endAttempt(entry, error);
    if (error === null) return this.#finish(entry, 'succeeded', result, null);
    if (entry.run.attempts.length < entry.run.maxAttempts) return this.#retry(entry, error);
    this.#finish(entry, 'failed', null, error);
  }

  #endAttempt(entry: Entry, error: RunError | null): void {
    this.#deadlines.delete(entry);
    if (entry.progressTimer) {
      // The trailing report the throttle held goes out ahead of the end (its value is saved with the end's record).
      entry.progressTimer.cancel();
      entry.progressTimer = undefined;
      this.#engine.observer.progress(entry.run);
    }
    entry.handle = undefined;
    const attempt = entry.run.attempts.at(-1);
    if (attempt) {
      attempt.endedAt = isoTime(this.#clock.now());
      attempt.error = error;
    }
    this.#release(entry);
  }

  #release(entry: Entry): void {
    if (entry.state !== 'running') return;
    entry.state = 'done';
    this.#dispatch.release(entry);
  }

  #retry(entry: Entry, error: RunError): void {
    const run = entry.run;
    const failed = run.attempts.length;
    const policy = entry.job?.retry ?? this.#engine.job(run.job)?.retry;
    const delayMs = policy ? retryDelay(policy, failed, this.#random) : 0;
    entry.runAtMs = this.#clock.now() + delayMs;
    run.status = 'queued';
    run.runAt = isoTime(entry.runAtMs);
    this.#dispatch.enqueue(entry);
    void this.#save(run);
    this.#engine.observer.retrying(run, failed, delayMs, error);
    this.#settled(run, 'retrying');
  }

  #finish(entry: Entry, status: 'succeeded' | 'failed' | 'canceled', result: unknown, error: RunError | null): void {
    const run = entry.run;
    const now = this.#clock.now();
    entry.state = 'done';
    run.status = status;
    run.result = result;
    run.error = error;
    run.endedAt = isoTime(now);
    run.durationMs = run.startedAt === null ? null : Math.max(0, now - entry.startedMs);
    this.#forget(entry);
    void this.#save(run);
    this.#engine.observer.finished(run);
    this.#settled(run, status);
  }

  #forget(entry: Entry): void {
    const run = entry.run;
    this.#entries.delete(run.id);
    const active = (this.#active.get(run.job) ?? 1) - 1;
    if (active > 0) this.#active.set(run.job, active);
    else this.#active.delete(run.job);
    if (run.key !== null) {
      const keys = this.#keys.get(run.job);
      if (keys?.get(run.key) === entry) keys.delete(run.key);
    }
  }

  // ------------------------------------------------------------------- cancel and shutdown

  /** Cancels a queued or running run: its signal is aborted and it ends `canceled` at once. */
  cancel(id: string, reason: string): Run | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    const error: RunError = { code: 'CANCELED', message: reason };
    if (entry.state === 'running') {
      entry.handle?.abort(new HostError('CANCELED', reason));
      this.#endAttempt(entry, error);
    } else {
      this.#dispatch.withdraw(entry);
    }
    this.#finish(entry, 'canceled', null, error);
    return entry.run;
  }

  #abortForShutdown(entry: Entry): void {
    const run = entry.run;
    const error: RunError = { code: 'SHUTDOWN', message: 'the host shut down before the attempt finished' };
    entry.handle?.abort(new HostError('SHUTDOWN', error.message));
    this.#endAttempt(entry, error);
    if (run.attempts.length < run.maxAttempts) {
      entry.state = 'done';
      run.status = 'queued';
      run.runAt = isoTime(this.#clock.now());
      void this.#save(run);
      // Live clients see it leave `running`: it waits, queued, for the next start.
      this.#engine.observer.queued(run, false);
    } else {
      this.#finish(entry, 'failed', null, error);
    }
  }
}

/** Marks an entry whose executor has not returned its handle yet (see `#start`). */
const NO_HANDLE: AttemptHandle = { abort: () => undefined };
