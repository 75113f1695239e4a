import { AttemptContext, installGuards, invoke, removeGuards, retryDelay, snapshotResult, type AttemptOwner } from './attempt.js';
import type { Bus } from './bus.js';
import { queuedData } from '../contract/events.js';
import { isoTime, type Clock, type Timer } from '../contract/clock.js';
import { HostError, toRunError, type ErrorCode, type RunError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { HostReader, JobContext, RetryPolicy } from '../contract/plugin.js';
import { Deque, IndexedHeap, TimeHeap, WeightedQueues, type HeapItem } from '../store/queue.js';
import type { Run } from '../contract/run.js';
import type { Store } from '../store/store.js';

export { retryDelay } from './attempt.js';

/** `run.progress` events per run are at most one per this interval (~10 per second). */
const PROGRESS_INTERVAL_MS = 100;

/**
 * The runner: queues, concurrency, attempts, timeouts, retries, cancel and progress. It knows
 * nothing of cron or plugins files; the host hands it runs and tells it what each job is.
 */

/** What the runner needs to know of a job, resolved by the host from plugin + config. */
export interface RunnerJob {
  readonly name: string;
  readonly handler: (ctx: JobContext<never>) => unknown;
  /** Max simultaneous runs (1 for `overlap: 'queue'`). */
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
}

export interface RunnerHooks {
  /** The job definition to run `name` with now, or undefined while no plugin provides it. */
  job(name: string): RunnerJob | undefined;
  /** A run reached a final state, or failed an attempt and will retry. */
  settled(run: Run, outcome: 'succeeded' | 'failed' | 'canceled' | 'retrying'): void;
  /** `ctx.emit(event, payload)` from a handler. */
  publish(event: string, payload: unknown, from: Run): void;
  /** `ctx.host`: read access to history. */
  reader: HostReader;
}

export interface RunnerOptions {
  clock: Clock;
  random: () => number;
  bus: Bus;
  store: Store;
  logger: Logger;
  hooks: RunnerHooks;
  concurrency: number;
  queues: Record<string, number>;
}

type EntryState = 'delayed' | 'ready' | 'parked' | 'running' | 'done';

interface Entry extends HeapItem {
  run: Run;
  state: EntryState;
  runAtMs: number;
  startedMs: number;
  /** Increments per attempt; a settle carrying an older token is a late result and is ignored. */
  token: number;
  attempt: AttemptContext<Entry> | undefined;
  /** The attempt's deadline (ms) as a timeout-heap key, and its place there (-1: none). */
  heapKey: number;
  heapIndex: number;
  timeoutMs: number;
  progressTimer: Timer | undefined;
  progressAt: number;
  job: RunnerJob | undefined;
}

interface JobSlots {
  running: number;
  parked: Deque<Entry>;
}

export class Runner {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #bus: Bus;
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #hooks: RunnerHooks;
  readonly #attemptOwner: AttemptOwner<Entry>;

  #concurrency: number;
  readonly #queues: WeightedQueues<Entry>;
  readonly #delayed = new TimeHeap<Entry>();
  #delayTimer: Timer | undefined;
  #delayTimerAt = Infinity;
  /** Deadlines of running attempts: one timer for the earliest instead of one per attempt. */
  readonly #deadlines = new IndexedHeap<Entry>();
  #deadlineTimer: Timer | undefined;
  #deadlineTimerAt = Infinity;

  readonly #entries = new Map<string, Entry>();
  readonly #slots = new Map<string, JobSlots>();
  readonly #keys = new Map<string, Map<string, Entry>>();
  readonly #active = new Map<string, number>();
  #running = 0;
  #ready = 0;
  #dispatching = false;
  #pumpQueued = false;
  #paused = true;
  #userPaused = false;
  #started = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: RunnerOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#bus = options.bus;
    this.#store = options.store;
    this.#logger = options.logger;
    this.#hooks = options.hooks;
    this.#concurrency = options.concurrency;
    this.#queues = new WeightedQueues<Entry>(options.queues);
    // What an AttemptContext may call back into: one object per runner, not per attempt.
    this.#attemptOwner = {
      reader: this.#hooks.reader,
      logger: () => this.#logger,
      settle: (entry, ok, value, code) => this.#settle(entry, ok, value, code),
      progress: (entry, fraction, text) => this.#progress(entry, fraction, text),
      publish: (event, payload, run) => this.#hooks.publish(event, payload, run),
    };
  }

  // ------------------------------------------------------------------- lifecycle and limits

  start(): void {
    if (!this.#started) installGuards(this.#logger);
    this.#started = true;
    this.#paused = this.#userPaused;
    this.#armDelayTimer();
    this.#schedulePump();
  }

  /** Stops starting runs (running ones go on); `resume()` picks up where it left. Works before start too. */
  pause(): void {
    this.#userPaused = true;
    this.#paused = true;
  }

  resume(): void {
    this.#userPaused = false;
    if (!this.#started) return;
    this.#paused = false;
    this.#schedulePump();
  }

  get paused(): boolean {
    return this.#userPaused;
  }

  setLimits(concurrency: number, queues: Record<string, number>): void {
    this.#concurrency = concurrency;
    this.#queues.setWeights(queues);
    this.#schedulePump();
  }

  hasQueue(name: string): boolean {
    return this.#queues.has(name);
  }

  /**
   * Stops dispatching, lets running attempts finish for `graceMs`, then aborts the rest: each
   * aborted attempt is recorded with SHUTDOWN and its run goes back to `queued` while attempts
   * remain. Queued and delayed runs stay queued.
   */
  async drain(graceMs: number): Promise<void> {
    this.#paused = true;
    this.#cancelDelayTimer();
    if (this.#running > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimer(graceMs, () => resolve());
        this.#idleWaiters.push(() => {
          timer.cancel();
          resolve();
        });
      });
    }
    for (const entry of [...this.#entries.values()]) {
      if (entry.state === 'running') this.#abortForShutdown(entry);
      entry.progressTimer?.cancel();
    }
    this.#deadlineTimer?.cancel();
    this.#deadlineTimer = undefined;
    this.#deadlineTimerAt = Infinity;
    // A retry scheduled by an attempt that failed during the grace re-armed it; the run stays
    // queued with its runAt for the next start, and no timer may keep the process alive.
    this.#cancelDelayTimer();
    if (this.#started) removeGuards(this.#logger);
    this.#started = false;
  }

  #cancelDelayTimer(): void {
    this.#delayTimer?.cancel();
    this.#delayTimer = undefined;
    this.#delayTimerAt = Infinity;
  }

  /** Resolves when nothing is running (queued runs may remain, e.g. while paused). */
  whenIdle(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  // ------------------------------------------------------------------- queries

  get running(): number {
    return this.#running;
  }

  /** Queued or running runs of `job`. */
  activeCount(job: string): number {
    return this.#active.get(job) ?? 0;
  }

  /** Running runs of `job`. */
  runningCount(job: string): number {
    return this.#slots.get(job)?.running ?? 0;
  }

  /** The queued or running run of `job` holding dedup `key`, if any. */
  byKey(job: string, key: string): Run | undefined {
    return this.#keys.get(job)?.get(key)?.run;
  }

  /** An unfinished run (the live object: callers copy before handing it out). */
  get(id: string): Run | undefined {
    return this.#entries.get(id)?.run;
  }

  firstActive(job: string): Run | undefined {
    for (const e of this.#entries.values()) if (e.run.job === job) return e.run;
    return undefined;
  }

  depths(): { queues: Record<string, number>; delayed: number; ready: number; running: number; parked: number } {
    const queues: Record<string, number> = {};
    let delayed = 0;
    let parked = 0;
    for (const name of Object.keys(this.#queues.sizes())) queues[name] = 0;
    for (const e of this.#entries.values()) {
      if (e.state === 'delayed') delayed++;
      else if (e.state === 'ready' || e.state === 'parked') {
        queues[e.run.queue] = (queues[e.run.queue] ?? 0) + 1;
        if (e.state === 'parked') parked++;
      }
    }
    return { queues, delayed, ready: this.#ready, running: this.#running, parked };
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
      token: 0,
      attempt: undefined,
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
    if (!this.#queues.has(run.queue)) run.queue = 'default';
    this.#enqueue(entry);
    return this.#store.saveRun(run);
  }

  #enqueue(entry: Entry, front = false): void {
    if (entry.runAtMs > this.#clock.now()) {
      entry.state = 'delayed';
      this.#delayed.push(entry.runAtMs, entry);
      this.#armDelayTimer();
    } else {
      entry.state = 'ready';
      this.#ready++;
      this.#queues.push(entry.run.queue, entry, entry.run.priority, front);
      this.#schedulePump();
    }
  }

  #armDelayTimer(): void {
    if (this.#paused && !this.#started) return;
    const at = this.#delayed.peekTime();
    if (at === undefined || at >= this.#delayTimerAt) return;
    this.#delayTimer?.cancel();
    this.#delayTimerAt = at;
    this.#delayTimer = this.#clock.setTimer(Math.max(0, at - this.#clock.now()), () => {
      this.#delayTimer = undefined;
      this.#delayTimerAt = Infinity;
      const now = this.#clock.now();
      while ((this.#delayed.peekTime() ?? Infinity) <= now) {
        const entry = this.#delayed.pop()!;
        if (entry.state === 'delayed') this.#enqueue(entry);
      }
      this.#armDelayTimer();
    });
  }

  // ------------------------------------------------------------------- dispatch

  #schedulePump(): void {
    if (this.#pumpQueued || this.#paused) return;
    this.#pumpQueued = true;
    // A microtask, so a burst of synchronous triggers is queued before the first pick.
    queueMicrotask(() => {
      this.#pumpQueued = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      while (!this.#paused && this.#running < this.#concurrency && this.#ready > 0) {
        const entry = this.#queues.shift();
        if (entry === undefined) break;
        if (entry.state !== 'ready') continue; // canceled while queued
        this.#ready--;
        const job = this.#hooks.job(entry.run.job);
        const slots = this.#slotsOf(entry.run.job);
        if (!job || slots.running >= job.concurrency) {
          entry.state = 'parked';
          slots.parked.push(entry);
          continue;
        }
        this.#start(entry, job, slots);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #slotsOf(job: string): JobSlots {
    let slots = this.#slots.get(job);
    if (!slots) this.#slots.set(job, (slots = { running: 0, parked: new Deque<Entry>() }));
    return slots;
  }

  /** A job was (re)registered or its limits changed: parked runs get another chance. */
  jobChanged(name: string): void {
    const slots = this.#slots.get(name);
    if (!slots) return;
    const job = this.#hooks.job(name);
    if (!job) return;
    let free = job.concurrency - slots.running;
    const back: Entry[] = [];
    while (free > 0) {
      const entry = slots.parked.shift();
      if (!entry) break;
      if (entry.state !== 'parked') continue;
      back.push(entry);
      free--;
    }
    // Back at the front of their queues, newest first so the oldest ends up first.
    for (let i = back.length - 1; i >= 0; i--) this.#enqueue(back[i]!, true);
  }

  #start(entry: Entry, job: RunnerJob, slots: JobSlots): void {
    const run = entry.run;
    const now = this.#clock.now();
    const iso = isoTime(now);
    entry.state = 'running';
    entry.job = job;
    slots.running++;
    this.#running++;
    run.status = 'running';
    if (run.startedAt === null) {
      run.startedAt = iso;
      entry.startedMs = now;
    }
    const n = run.attempts.length + 1;
    // A new attempt starts from zero; the last one's progress stays visible until then.
    if (n > 1 && (run.progress.fraction !== 0 || run.progress.text !== null)) run.progress = { fraction: 0, text: null };
    run.attempts.push({ n, startedAt: iso, endedAt: null, error: null });
    void this.#store.saveRun(run);
    this.#bus.emit('run.started', { job: run.job, runId: run.id, attempt: n });
    this.#attempt(entry, job, n);
  }

  #attempt(entry: Entry, job: RunnerJob, n: number): void {
    const ctx = new AttemptContext(this.#attemptOwner, entry, ++entry.token, n);
    entry.attempt = ctx;
    if (job.timeoutMs > 0) {
      entry.timeoutMs = job.timeoutMs;
      entry.heapKey = this.#clock.now() + job.timeoutMs;
      this.#deadlines.push(entry);
      if (entry.heapKey < this.#deadlineTimerAt) this.#armDeadlines();
    }
    invoke(ctx, job.handler);
  }

  /** Arms the one timeout timer for the earliest deadline; fires every attempt that is due. */
  #armDeadlines(): void {
    this.#deadlineTimer?.cancel();
    const first = this.#deadlines.peek();
    if (!first) {
      this.#deadlineTimer = undefined;
      this.#deadlineTimerAt = Infinity;
      return;
    }
    this.#deadlineTimerAt = first.heapKey;
    this.#deadlineTimer = this.#clock.setTimer(Math.max(0, first.heapKey - this.#clock.now()), () => {
      const now = this.#clock.now();
      for (let due = this.#deadlines.peek(); due && due.heapKey <= now; due = this.#deadlines.peek()) {
        this.#deadlines.remove(due);
        due.attempt?.timeout(due.timeoutMs);
      }
      this.#armDeadlines();
    });
  }


  #progress(entry: Entry, fraction: number, text: string | undefined): void {
    const run = entry.run;
    const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
    run.progress = { fraction: f, text: text === undefined ? run.progress.text : String(text).slice(0, 1000) };
    if (entry.progressTimer) return; // a trailing emit is due and will carry the newest value
    const wait = entry.progressAt + PROGRESS_INTERVAL_MS - this.#clock.now();
    if (wait <= 0) this.#emitProgress(entry);
    else {
      entry.progressTimer = this.#clock.setTimer(wait, () => {
        entry.progressTimer = undefined;
        if (entry.state === 'running') this.#emitProgress(entry);
      });
    }
  }

  #emitProgress(entry: Entry): void {
    const run = entry.run;
    entry.progressAt = this.#clock.now();
    void this.#store.saveRun(run);
    this.#bus.emit('run.progress', { job: run.job, runId: run.id, fraction: run.progress.fraction, text: run.progress.text });
  }

  /** Ends the current attempt of a running entry. */
  #settle(entry: Entry, ok: boolean, value: unknown, code?: ErrorCode): void {
    const run = entry.run;
    let result: unknown = null;
    let error: RunError | null = null;
    if (ok) {
      try {
        result = snapshotResult(value);
      } catch (err) {
        ok = false;
        error = toRunError(err);
      }
    } else {
      error = toRunError(value, code === undefined ? 'HANDLER_ERROR' : code);
      if (code !== undefined && !(value instanceof HostError)) error = { code, message: error.message };
    }
    this.#endAttempt(entry, error);
    if (ok) return this.#finish(entry, 'succeeded', result, null);
    const err = error as RunError;
    if (run.attempts.length < run.maxAttempts) return this.#retry(entry, err);
    this.#finish(entry, 'failed', null, err);
  }

  #endAttempt(entry: Entry, error: RunError | null): void {
    // Leaving the heap is enough: the timer stays armed (re-arming it per attempt would cost what
    // one timer per attempt costs), fires, finds nothing due, and re-arms or stops; drain() ends it.
    this.#deadlines.remove(entry);
    entry.progressTimer?.cancel();
    entry.progressTimer = undefined;
    entry.attempt = undefined;
    entry.token++;
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
    this.#running--;
    const slots = this.#slotsOf(entry.run.job);
    slots.running--;
    if (slots.parked.length > 0) this.jobChanged(entry.run.job);
    if (this.#running === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
    this.#schedulePump();
  }

  #retry(entry: Entry, error: RunError): void {
    const run = entry.run;
    const failed = run.attempts.length;
    const policy = entry.job?.retry ?? this.#hooks.job(run.job)?.retry;
    const delayMs = policy ? retryDelay(policy, failed, this.#random) : 0;
    entry.runAtMs = this.#clock.now() + delayMs;
    run.status = 'queued';
    run.runAt = isoTime(entry.runAtMs);
    this.#enqueue(entry);
    void this.#store.saveRun(run);
    this.#bus.emit('run.retrying', { job: run.job, runId: run.id, attempt: failed, nextAttempt: failed + 1, runAt: run.runAt, delayMs, error });
    this.#hooks.settled(run, 'retrying');
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
    void this.#store.saveRun(run);
    if (status === 'succeeded') {
      this.#bus.emit('run.succeeded', { job: run.job, runId: run.id, attempt: run.attempts.length, durationMs: run.durationMs ?? 0, result });
    } else if (status === 'failed') {
      this.#bus.emit('run.failed', { job: run.job, runId: run.id, attempt: run.attempts.length, durationMs: run.durationMs, error: error! });
    } else {
      this.#bus.emit('run.canceled', { job: run.job, runId: run.id, reason: error?.message ?? 'canceled' });
    }
    this.#hooks.settled(run, status);
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
  cancel(id: string, reason = 'canceled by request'): Run | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    const error: RunError = { code: 'CANCELED', message: reason };
    if (entry.state === 'running') {
      entry.attempt?.abort(new HostError('CANCELED', reason));
      this.#endAttempt(entry, error);
    } else if (entry.state === 'ready') {
      this.#ready--;
    }
    this.#finish(entry, 'canceled', null, error);
    return entry.run;
  }

  #abortForShutdown(entry: Entry): void {
    const run = entry.run;
    const error: RunError = { code: 'SHUTDOWN', message: 'the host shut down before the attempt finished' };
    entry.attempt?.abort(new HostError('SHUTDOWN', error.message));
    this.#endAttempt(entry, error);
    if (run.attempts.length < run.maxAttempts) {
      entry.state = 'done';
      run.status = 'queued';
      run.runAt = isoTime(this.#clock.now());
      void this.#store.saveRun(run);
      // Live clients see it leave `running`: it waits, queued, for the next start.
      this.#bus.emit('run.queued', queuedData(run, false));
    } else {
      this.#finish(entry, 'failed', null, error);
    }
  }
}
