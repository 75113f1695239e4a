import type { Job } from 'bullmq';
import { type Clock, settlesWithin, type Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { JobQueue } from './job-queues.js';

/**
 * When this host takes runs from Redis: one slot per run it may run at once (`concurrency`),
 * filled from the job queues that may have work, picked by smooth weighted round-robin over the
 * weighted queues (`queues` in the config) and round-robin among the jobs of one. A slot fetches
 * with BullMQ's `getNextJob` (no blocking: the stream reader says when a queue may have work) and
 * keeps going with the next run BullMQ hands over in the same write that ends a run, while the
 * pick keeps choosing that job. A job at its cluster-wide limit yields nothing and its slot goes
 * to the next pick. Nothing here holds a run that has not started: unstarted runs stay in Redis
 * for every host.
 */

export interface DispatcherOptions {
  clock: Clock;
  logger: Logger;
  concurrency: number;
  weights: Readonly<Record<string, number>>;
  /** The loaded job queue of that name (not removed), if any. */
  job(name: string): JobQueue | undefined;
  /** Runs one fetched run in a slot; resolves with the next run BullMQ handed over, if any. */
  run(jq: JobQueue, job: Job, token: string, fetchNext: () => boolean): Promise<Job | undefined>;
  /** Marks every loaded queue ready (the periodic sweep). */
  sweep(): void;
  /** Fetches in flight at once (each reserves a slot). */
  parallelFetch?: number;
  /** A fetch of `jq` came back empty (the wiring wakes a rate-limited job when its window closes). */
  empty?(jq: JobQueue): void;
  /** Every slot is taken (true), or one is free again (false). */
  full?(full: boolean): void;
  /**
   * Whether Redis can be reached now. While it cannot (a partition), no run is fetched or taken
   * over in an end's write: a fetch would wait in the connection's queue and start a run at some
   * later moment. Call `pump()` once it can again.
   */
  reachable?(): boolean;
}

/** What a drain waits for fetches with no run yet (see `idle`). */
const FETCH_SETTLE_MS = 1000;

/** Marks every loaded queue ready this often: a wake-up the stream missed is caught by then. */
const SWEEP_MS = 5000;

export class Dispatcher {
  readonly #o: DispatcherOptions;
  #concurrency: number;
  #weights: Record<string, number>;
  /** Smooth weighted round-robin state per weighted queue. */
  readonly #current = new Map<string, number>();
  /** Round-robin position inside each weighted queue. */
  readonly #turn = new Map<string, number>();
  /** Job queues that may have work, with a generation so a fetch that came back empty does not unmark a fresh wake-up. */
  readonly #ready = new Map<string, number>();
  #generation = 0;
  #slots = 0;
  #fetching = 0;
  /** A pick made by a slot that could not use it: the next pump starts with it. */
  #nextPick: string | null = null;
  #started = false;
  #paused = false;
  #halted = false;
  /** Set once a drain stopped waiting for fetches Redis had not answered (see `idle`). */
  #abandoned = false;
  readonly #inflight = new Set<Promise<void>>();
  #sweep: Timer | undefined;
  #tokens = 0;
  readonly #tokenPrefix: string;
  #full = false;

  constructor(options: DispatcherOptions, tokenPrefix: string) {
    this.#o = options;
    this.#concurrency = options.concurrency;
    this.#weights = { ...options.weights };
    this.#tokenPrefix = tokenPrefix;
  }

  start(): void {
    this.#started = true;
    this.#halted = false;
    this.#armSweep();
    this.pump();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.pump();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Takes no more runs (shutdown): running ones go on; no next run is taken when one ends. */
  halt(): void {
    this.#halted = true;
    this.#sweep?.cancel();
    this.#sweep = undefined;
  }

  setLimits(concurrency: number, weights: Readonly<Record<string, number>>): void {
    this.#concurrency = concurrency;
    this.#weights = { ...weights };
    this.pump();
  }

  /** The config's queues, in its order. */
  get queueNames(): string[] {
    return Object.keys(this.#weights);
  }

  /** Runs in flight here (fetching or running). */
  get busy(): number {
    return this.#slots;
  }

  /**
   * Resolves true once no slot is busy, or false after `ms` (what a drain grants). A slot still
   * fetching holds no run: once only fetches are left, they get `FETCH_SETTLE_MS` of it (a fetch
   * answers in a round trip; one Redis does not answer, cut off or frozen, would hold a stop with
   * nothing running for the whole grace).
   */
  async idle(ms: number): Promise<boolean> {
    const deadline = this.#o.clock.now() + ms;
    while (this.#inflight.size > 0) {
      const left = deadline - this.#o.clock.now();
      if (left <= 0) return false;
      const bound = this.#slots === this.#fetching ? Math.min(left, FETCH_SETTLE_MS) : left;
      const settled = await settlesWithin(this.#o.clock, bound, Promise.race([...this.#inflight]));
      // Still only fetching (a fetch that came back meanwhile is a run now, and has the grace):
      // given up; a run such a fetch brings later is handed back, not run on a closing host.
      if (!settled && this.#slots === this.#fetching) {
        this.#abandoned = true;
        return false;
      }
    }
    return true;
  }

  /** Slots busy running a run here (not fetching one). */
  get running(): number {
    return this.#slots - this.#fetching;
  }

  /** The queue of `name` may have work (a stream event, a timer, a load). */
  markReady(name: string): void {
    this.#ready.set(name, ++this.#generation);
    this.pump();
  }

  /** The job left this host: no more picks of it. */
  forget(name: string): void {
    this.#ready.delete(name);
    if (this.#nextPick === name) this.#nextPick = null;
  }

  #armSweep(): void {
    this.#sweep = this.#o.clock.setTimer(SWEEP_MS, () => {
      this.#sweep = undefined;
      if (this.#halted) return;
      // A host-wide nudge: catches what no stream event announced (a reconnect, a missed timer).
      this.#o.sweep();
      this.#armSweep();
    });
  }

  /** The weighted queue to serve next among those with ready jobs, then the job within it. */
  #pick(): string | null {
    if (this.#ready.size === 1) {
      // The usual case under load (one busy job): no weights to weigh.
      const only = this.#ready.keys().next().value as string;
      if (this.#o.job(only)) return only;
    }
    const byQueue = new Map<string, string[]>();
    for (const name of this.#ready.keys()) {
      const jq = this.#o.job(name);
      if (!jq) {
        this.#ready.delete(name);
        continue;
      }
      const q = this.#weights[jq.def.queue] !== undefined ? jq.def.queue : 'default';
      let list = byQueue.get(q);
      if (!list) byQueue.set(q, (list = []));
      list.push(name);
    }
    if (byQueue.size === 0) return null;
    let total = 0;
    let best: string | null = null;
    for (const q of byQueue.keys()) {
      const w = this.#weights[q] ?? 1;
      const cw = (this.#current.get(q) ?? 0) + w;
      this.#current.set(q, cw);
      total += w;
      if (best === null || cw > this.#current.get(best)!) best = q;
    }
    this.#current.set(best!, this.#current.get(best!)! - total);
    const list = byQueue.get(best!)!.sort();
    const turn = ((this.#turn.get(best!) ?? -1) + 1) % list.length;
    this.#turn.set(best!, turn);
    return list[turn]!;
  }

  /** Fills free slots: a fetch per free slot, at most `parallelFetch` at once. */
  pump(): void {
    if (!this.#started || this.#paused || this.#halted || this.#o.reachable?.() === false) return;
    const parallel = this.#o.parallelFetch ?? 4;
    while (this.#fetching < parallel && this.#slots < this.#concurrency) {
      const name = this.#nextPick ?? this.#pick();
      this.#nextPick = null;
      if (name === null) break;
      const jq = this.#o.job(name);
      if (!jq) continue;
      this.#slots++;
      this.#fetching++;
      this.#track(this.#fetch(jq));
    }
    this.#checkFull();
  }

  /** Tells whoever listens when the host goes from a free slot to none and back. */
  #checkFull(): void {
    const full = this.#slots >= this.#concurrency;
    if (full === this.#full) return;
    this.#full = full;
    this.#o.full?.(full);
  }

  #track(p: Promise<void>): void {
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  async #fetch(jq: JobQueue): Promise<void> {
    const generation = this.#ready.get(jq.name);
    const token = `${this.#tokenPrefix}:${++this.#tokens}`;
    let job: Job | undefined;
    try {
      job = await jq.worker.getNextJob(token, { block: false });
    } catch (err) {
      this.#o.logger.debug({ err, job: jq.name }, 'could not fetch a run');
    }
    this.#fetching--;
    if (job && this.#abandoned) {
      // Fetched after the drain gave up on it: back to wait for another host (or, unanswered, its
      // lock lapses and one takes it over), never started here while the backend closes.
      await job.moveToWait(token).catch((err: unknown) => this.#o.logger.debug({ err, job: jq.name }, 'could not hand back a run fetched at a stop'));
      job = undefined;
    }
    if (!job) {
      // Nothing there (or at its limit): no more fetches until a stream event says otherwise.
      if (this.#ready.get(jq.name) === generation) this.#ready.delete(jq.name);
      this.#o.empty?.(jq);
      this.#slots--;
      this.pump();
      this.#checkFull();
      return;
    }
    this.pump();
    await this.#slot(jq, job, token);
  }

  /** One slot: runs, and while the pick keeps choosing the same job, takes BullMQ's handed-over next run. */
  async #slot(jq: JobQueue, first: Job, token: string): Promise<void> {
    let job: Job | undefined = first;
    try {
      while (job) job = await this.#o.run(jq, job, token, () => this.#wantNext(jq));
    } catch (err) {
      this.#o.logger.error({ err, job: jq.name }, 'a run slot failed');
    } finally {
      this.#slots--;
      this.pump();
      this.#checkFull();
    }
  }

  /** Asked by BullMQ as a run ends: take the next run of the same job in the same write? */
  #wantNext(jq: JobQueue): boolean {
    if (this.#paused || this.#halted || jq.removed || this.#slots > this.#concurrency || this.#o.reachable?.() === false) return false;
    const pick = this.#nextPick ?? this.#pick();
    this.#nextPick = null;
    if (pick === jq.name) return true;
    this.#nextPick = pick;
    return false;
  }

  stop(): void {
    this.halt();
    this.#started = false;
  }
}
