import type { ExecutableJob } from '../contract/attempt.js';
import type { Depths } from '../contract/backend.js';
import type { Clock, Timer } from '../contract/clock.js';
import type { Run } from '../contract/run.js';
import { PriorityFifo, TimeHeap, WeightedQueues } from './queue.js';
import { RateWindows } from './rate-limit.js';

/**
 * Where the local backend's runs wait, and when one may start: delayed runs in a time heap with
 * one timer, ready runs in weighted priority queues, runs over their job's `concurrency` parked
 * per job. It starts a run (through `start`) whenever the global and the job's limits allow.
 */

export type EntryState = 'delayed' | 'ready' | 'parked' | 'running' | 'done';

/** A run as the dispatcher holds it. */
export interface Waiting {
  run: Run;
  state: EntryState;
  runAtMs: number;
}

export interface DispatcherOptions<E extends Waiting> {
  clock: Clock;
  concurrency: number;
  queues: Record<string, number>;
  /** The definition to start a run of `name` with now, or undefined (its runs park). */
  job(name: string): ExecutableJob | undefined;
  /** Starts `entry`: its slot is taken already. */
  start(entry: E, job: ExecutableJob): void;
}

interface JobSlots<E> {
  running: number;
  /** In priority order, first in first out within one: a freed slot goes to the best of them. */
  parked: PriorityFifo<E>;
}

export class Dispatcher<E extends Waiting> {
  readonly #o: DispatcherOptions<E>;
  #concurrency: number;
  readonly #queues: WeightedQueues<E>;
  readonly #delayed = new TimeHeap<E>();
  #delayTimer: Timer | undefined;
  #delayTimerAt = Infinity;
  readonly #slots = new Map<string, JobSlots<E>>();
  #running = 0;
  #ready = 0;
  #dispatching = false;
  #pumpQueued = false;
  #paused = true;
  #userPaused = false;
  #started = false;
  #idleWaiters: (() => void)[] = [];
  readonly #limits: RateWindows<E>;

  constructor(options: DispatcherOptions<E>) {
    this.#o = options;
    this.#limits = new RateWindows<E>(options.clock, (held) => this.#unpark(held));
    this.#concurrency = options.concurrency;
    this.#queues = new WeightedQueues<E>(options.queues);
  }

  start(): void {
    this.#started = true;
    this.#paused = this.#userPaused;
    this.#limits.resume();
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

  /** Starts nothing more; no timer is left to keep the process alive. */
  halt(): void {
    this.#paused = true;
    this.#limits.halt();
    this.#cancelDelayTimer();
  }

  /** After a halt: `start()` may come again. */
  stopped(): void {
    this.#cancelDelayTimer();
    this.#started = false;
  }

  setLimits(concurrency: number, queues: Readonly<Record<string, number>>): void {
    this.#concurrency = concurrency;
    this.#queues.setWeights(queues);
    this.#schedulePump();
  }

  hasQueue(name: string): boolean {
    return this.#queues.has(name);
  }

  get running(): number {
    return this.#running;
  }

  runningCount(job: string): number {
    return this.#slots.get(job)?.running ?? 0;
  }

  /** Runs of `job` ready but held by its `rateLimit` until the window closes. */
  rateLimited(job: string): number {
    return this.#limits.held(job);
  }

  /** Resolves once nothing runs, or after `graceMs` on the clock. */
  async idle(graceMs: number): Promise<void> {
    if (this.#running === 0 || graceMs <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = this.#o.clock.setTimer(graceMs, () => resolve());
      this.#idleWaiters.push(() => {
        timer.cancel();
        resolve();
      });
    });
  }

  depths(entries: Iterable<E>): Depths {
    const queues: Record<string, number> = {};
    let delayed = 0;
    let parked = 0;
    for (const name of Object.keys(this.#queues.sizes())) queues[name] = 0;
    for (const e of entries) {
      if (e.state === 'delayed') delayed++;
      else if (e.state === 'ready' || e.state === 'parked') {
        queues[e.run.queue] = (queues[e.run.queue] ?? 0) + 1;
        if (e.state === 'parked') parked++;
      }
    }
    return { queues, delayed, ready: this.#ready, running: this.#running, parked };
  }

  /** Puts a run in line: delayed until its `runAtMs`, or ready (at the front of its priority with `front`). */
  enqueue(entry: E, front = false): void {
    if (entry.runAtMs > this.#o.clock.now()) {
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

  /** A waiting run leaves the line (canceled); it is skipped when its turn comes. */
  withdraw(entry: E): void {
    if (entry.state === 'ready') this.#ready--;
  }

  /** A running run gave its slot back. */
  release(entry: E): void {
    this.#running--;
    const slots = this.#slotsOf(entry.run.job);
    slots.running--;
    if (slots.parked.size > 0) this.#slotFreed(entry.run.job);
    if (this.#running === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
    this.#schedulePump();
  }

  /** A job was (re)registered or its limits changed: parked runs get another chance. */
  jobChanged(name: string): void {
    this.#limits.releaseJob(name);
    this.#slotFreed(name);
  }

  #slotFreed(name: string): void {
    const slots = this.#slots.get(name);
    if (!slots) return;
    const job = this.#o.job(name);
    if (!job) return;
    let free = job.concurrency - slots.running;
    const back: E[] = [];
    while (free > 0) {
      const entry = slots.parked.shift();
      if (!entry) break;
      if (entry.state !== 'parked') continue;
      back.push(entry);
      free--;
    }
    this.#unpark(back);
  }

  /** Back at the front of their queues, newest first so the oldest ends up first. */
  #unpark(back: E[]): void {
    for (let i = back.length - 1; i >= 0; i--) this.enqueue(back[i]!, true);
  }

  /** Every job's parked runs get another chance (a pause lifted). */
  unparkAll(): void {
    for (const name of this.#slots.keys()) this.jobChanged(name);
  }

  #cancelDelayTimer(): void {
    this.#delayTimer?.cancel();
    this.#delayTimer = undefined;
    this.#delayTimerAt = Infinity;
  }

  #armDelayTimer(): void {
    if (this.#paused && !this.#started) return;
    const at = this.#delayed.peekTime();
    if (at === undefined || at >= this.#delayTimerAt) return;
    this.#delayTimer?.cancel();
    this.#delayTimerAt = at;
    const clock = this.#o.clock;
    this.#delayTimer = clock.setTimer(Math.max(0, at - clock.now()), () => {
      this.#delayTimer = undefined;
      this.#delayTimerAt = Infinity;
      const now = clock.now();
      while ((this.#delayed.peekTime() ?? Infinity) <= now) {
        const entry = this.#delayed.pop()!;
        if (entry.state === 'delayed') this.enqueue(entry);
      }
      this.#armDelayTimer();
    });
  }

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
        const job = this.#o.job(entry.run.job);
        const slots = this.#slotsOf(entry.run.job);
        if (!job || slots.running >= job.concurrency) {
          entry.state = 'parked';
          slots.parked.push(entry, entry.run.priority);
          continue;
        }
        if (job.rateLimit !== undefined && !this.#limits.admit(entry, job.rateLimit)) {
          entry.state = 'parked';
          continue;
        }
        slots.running++;
        this.#running++;
        this.#o.start(entry, job);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #slotsOf(job: string): JobSlots<E> {
    let slots = this.#slots.get(job);
    if (!slots) this.#slots.set(job, (slots = { running: 0, parked: new PriorityFifo<E>() }));
    return slots;
  }
}
