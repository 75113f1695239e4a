import { z } from 'zod';
import type { Depths, JobFlags, JobState } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { foldFinished } from '../contract/job-state.js';
import type { Logger } from '../contract/logger.js';
import type { Run } from '../contract/run.js';
import { Every } from './every.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';
import { StateReader } from './state-scripts.js';

/**
 * This host's copy of what the engine reads synchronously (job flags and counts, queue depths),
 * for every job any host has loaded. One script reads it all from Redis every half second
 * (`state-scripts.ts`: the jobs and their keys known from the last read, checked by the script);
 * what this host does itself (a run it finished, a flag it set) shows at once and is never
 * undone by a read that started before it landed: the later `lastRun` wins, and a run this host
 * ended is counted on top of a read until a read has it (see `#pending`).
 */

const REFRESH_MS = 500;
/** Durations (for p50/p95) are read every this many refreshes: they cost a read per run. */
const DURATIONS_EVERY = 10;

const numeric = z.union([z.number(), z.string()]).transform((v) => (v === '' ? null : Number(v)));

const mirrored = z.object({
  name: z.string(),
  enabled: z.string(),
  lastFireAt: numeric,
  lastSuccessAt: numeric,
  succeededRun: z.string(),
  canceled: z.number(),
  canceledRunning: z.number(),
  lastCanceledRun: z.string(),
  lastCanceledAt: numeric,
  completed: z.number(),
  failed: z.number(),
  lastCompleted: z.string(),
  lastCompletedAt: numeric,
  lastFailed: z.string(),
  lastFailedAt: numeric,
  lastFailedReason: z.string(),
  waiting: z.number(),
  delayed: z.number(),
  active: z.number(),
  durations: z.array(z.number()).optional(),
  failStreak: z.number(),
  endedStreak: z.number(),
  folds: z.number(),
  missedThrough: numeric,
});

type Mirrored = z.output<typeof mirrored>;

interface Live {
  waiting: number;
  delayed: number;
  active: number;
}

type Counted = 'succeeded' | 'failed' | 'canceled';

/** A run this host ended, counted on top of the reads until one has it. */
interface PendingEnd {
  status: Counted;
  /** How many reads had been sent when the end was told here: a read sent after it has the end. */
  reads: number;
  /** Where the end stands in the job's counted ends (the fold's `folds`), when known. */
  folds: number | undefined;
}

export interface MirrorOptions {
  redis: ScriptedRedis;
  keys: ClusterKeys;
  clock: Clock;
  logger: Logger;
  /** How long the shared settings outlive the last host that refreshes them (ms). */
  settingsTtlMs: number;
  /** This host's lock timing, asserted again should the shared settings have lapsed. */
  lockDuration: number;
  stalledInterval: number;
  /** A job's `enabled` flag changed in Redis (another host toggled it). */
  flagsChanged(name: string): void;
  /** The weighted queue of a job loaded here (for depths by queue). */
  queueOf(name: string): string | undefined;
  /** The job's cluster-wide `concurrency` as loaded here (0 while its rateLimit window holds its runs back); undefined for a job this host does not run. */
  concurrencyOf(name: string): number | undefined;
  /** Canceled runs counted as failed by BullMQ's metrics (see `canceledRunning`): the canceled reason. */
  canceledReason: string;
}

export class Mirror {
  readonly #o: MirrorOptions;
  readonly #reader: StateReader;
  readonly #states = new Map<string, JobState>();
  readonly #live = new Map<string, Live>();
  /** Bumped by each local flag change, so a read that started before it does not undo it. */
  readonly #flagVersions = new Map<string, number>();
  /** Per job, the count of ends folded into the streaks this mirror shows (see `folded`): an older read does not undo a newer fold. */
  readonly #folds = new Map<string, number>();
  /**
   * Per job, the runs this host ended that the last read may not have counted. Counts are the
   * read's plus these: the end of a run is written, then told here, so a read sent after that has
   * it; one sent before may have it too (its reply can come first), which the end's place among
   * the job's counted ends (`folds`, written in the same MULTI as BullMQ's count) settles. Taking
   * the larger of the two counts instead counted such a run twice, for good.
   */
  readonly #pending = new Map<string, PendingEnd[]>();
  /** Per job, `folds` as the last read found it: an end at or below it is in the counts read. */
  readonly #readFolds = new Map<string, number>();
  /** Reads sent so far. */
  #reads = 0;
  #indexSize = 0;
  #refreshes = 0;
  #refreshing: Promise<void> | undefined;
  readonly #refreshLoop: Every;

  constructor(options: MirrorOptions) {
    this.#o = options;
    this.#reader = new StateReader(options.redis, options.keys, options);
    this.#refreshLoop = new Every(options.clock, REFRESH_MS, () => this.refresh(), options.logger, 'could not refresh the job states');
  }

  state(name: string): JobState {
    let s = this.#states.get(name);
    if (!s) this.#states.set(name, (s = {}));
    return s;
  }

  states(): ReadonlyMap<string, JobState> {
    return this.#states;
  }

  #liveOf(name: string): Live {
    let l = this.#live.get(name);
    if (!l) this.#live.set(name, (l = { waiting: 0, delayed: 0, active: 0 }));
    return l;
  }

  /** A flag this host set: shown at once. */
  setFlags(name: string, flags: JobFlags): void {
    const state = this.state(name);
    if (flags.enabled === null) delete state.enabled;
    else if (flags.enabled !== undefined) state.enabled = flags.enabled;
    if (flags.lastFireAt === null) delete state.lastFireAt;
    else if (flags.lastFireAt !== undefined) state.lastFireAt = flags.lastFireAt;
    this.#flagVersions.set(name, (this.#flagVersions.get(name) ?? 0) + 1);
  }

  /** A run this host added: counted until the next read has it. */
  added(run: Run, delayed: boolean): void {
    const live = this.#liveOf(run.job);
    if (delayed) live.delayed++;
    else live.waiting++;
  }

  started(job: string): void {
    const live = this.#liveOf(job);
    live.waiting = Math.max(0, live.waiting - 1);
    live.active++;
  }

  /**
   * A run this host ended (or a waiting run it canceled), after the write that ended it; `folds`
   * is that end's place among the job's counted ends, when the write said. `counted` is a write
   * of the run's count still under way (a cancel's): until it lands, no read has the run.
   */
  finished(run: Run, wasRunning: boolean, folds?: number, counted?: Promise<unknown>): void {
    const state = this.state(run.job);
    const { failStreak, endedStreak } = state;
    foldFinished(state, run);
    const status = run.status;
    if (status === 'succeeded' || status === 'failed' || status === 'canceled') {
      if (folds !== undefined && folds <= (this.#readFolds.get(run.job) ?? 0)) {
        // A read already counted it (its reply came before this end was told).
        state.counts![status]!--;
      } else {
        let pending = this.#pending.get(run.job);
        if (!pending) this.#pending.set(run.job, (pending = []));
        const end: PendingEnd = { status, reads: counted ? Number.POSITIVE_INFINITY : this.#reads, folds };
        pending.push(end);
        // Reads sent once the count has landed have it; one that failed never lands (it was logged).
        counted?.then(
          () => (end.reads = this.#reads),
          () => undefined,
        );
      }
    }
    // The streaks are Redis's (the fold in the write that ended the run, see `folded`): runs of
    // other hosts come between, so this host's own ends alone would count them wrong.
    if (failStreak === undefined) delete state.failStreak;
    else state.failStreak = failStreak;
    if (endedStreak === undefined) delete state.endedStreak;
    else state.endedStreak = endedStreak;
    const live = this.#liveOf(run.job);
    if (wasRunning) live.active = Math.max(0, live.active - 1);
    else live.waiting = Math.max(0, live.waiting - 1);
  }

  /**
   * The job's streaks as the write that ended a run here left them (the run counted): shown at
   * once, so the alert rules read them before the next refresh. A read or fold that counted
   * fewer ends than one applied before is older and changes nothing.
   */
  folded(job: string, fold: { failStreak: number; endedStreak: number; folds: number }): void {
    if (fold.folds < (this.#folds.get(job) ?? 0)) return;
    this.#folds.set(job, fold.folds);
    const state = this.state(job);
    state.failStreak = fold.failStreak;
    state.endedStreak = fold.endedStreak;
  }

  /** The job's `missedThrough` this host raised (it only grows). */
  missed(job: string, through: number): void {
    const state = this.state(job);
    if (state.missedThrough === undefined || state.missedThrough < through) state.missedThrough = through;
  }

  activeRuns(job: string): { active: number; running: number; waiting: number } {
    const l = this.#live.get(job);
    return l ? { active: l.waiting + l.delayed + l.active, running: l.active, waiting: l.waiting } : { active: 0, running: 0, waiting: 0 };
  }

  depths(): Depths {
    const queues: Record<string, number> = {};
    let delayed = 0;
    let ready = 0;
    let running = 0;
    let parked = 0;
    for (const [name, l] of this.#live) {
      const q = this.#o.queueOf(name) ?? 'default';
      queues[q] = (queues[q] ?? 0) + l.waiting;
      delayed += l.delayed;
      running += l.active;
      // As on one host: runs the job's concurrency holds back (cluster-wide: its running runs on
      // every host), and runs of a job this host does not run, are parked, not ready.
      const limit = this.#o.concurrencyOf(name);
      const startable = limit === undefined ? 0 : Math.max(0, Math.min(l.waiting, limit - l.active));
      ready += startable;
      parked += l.waiting - startable;
    }
    return { queues, delayed, ready, running, parked };
  }

  /** Waiting and delayed runs of every job, cluster-wide, as last read (plus this host's adds since): for `limits.maxQueued`. */
  waiting(): number {
    let n = 0;
    for (const l of this.#live.values()) n += l.waiting + l.delayed;
    return n;
  }

  get indexSize(): number {
    return this.#indexSize;
  }

  get liveRuns(): number {
    let n = 0;
    for (const l of this.#live.values()) n += l.waiting + l.delayed + l.active;
    return n;
  }

  /** Reads every job's state from Redis (`StateReader`). Rejects when Redis cannot be reached. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#read().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #read(): Promise<void> {
    const versions = new Map(this.#flagVersions);
    const durations = this.#refreshes++ % DURATIONS_EVERY === 0;
    const sent = ++this.#reads;
    const { items, indexSize } = await this.#reader.read(durations);
    this.#indexSize = indexSize;
    const merged = new Set<string>();
    for (const item of items) {
      const parsed = mirrored.safeParse(item);
      if (!parsed.success) continue;
      const m = parsed.data;
      const flagsSettled = (this.#flagVersions.get(m.name) ?? 0) === (versions.get(m.name) ?? 0);
      this.#merge(m, flagsSettled, sent);
      merged.add(m.name);
    }
    // A job no longer in Redis's set (removed everywhere) has no counts to add its ends to.
    for (const job of this.#pending.keys()) if (!merged.has(job)) this.#pending.delete(job);
  }

  #merge(m: Mirrored, flagsSettled: boolean, sent: number): void {
    const state = this.state(m.name);
    if (flagsSettled) {
      const enabled = m.enabled === '1' ? true : m.enabled === '0' ? false : undefined;
      const changed = enabled !== state.enabled;
      if (enabled === undefined) delete state.enabled;
      else state.enabled = enabled;
      if (m.lastFireAt === null) delete state.lastFireAt;
      else state.lastFireAt = m.lastFireAt;
      if (changed) this.#o.flagsChanged(m.name);
    }
    const counts = (state.counts ??= {});
    counts.succeeded = m.completed;
    counts.failed = m.failed - m.canceledRunning;
    counts.canceled = m.canceled;
    this.#readFolds.set(m.name, m.folds);
    const pending = this.#pending.get(m.name);
    if (pending) {
      // Ends told before this read was sent are in it, and so are those whose fold it counted.
      const left = pending.filter((e) => e.reads >= sent && (e.folds === undefined || e.folds > m.folds));
      for (const e of left) counts[e.status] = (counts[e.status] ?? 0) + 1;
      if (left.length > 0) this.#pending.set(m.name, left);
      else this.#pending.delete(m.name);
    }
    const candidates: Array<{ runId: string; status: 'succeeded' | 'failed' | 'canceled'; ms: number }> = [];
    if (m.lastCompleted && m.lastCompletedAt !== null) candidates.push({ runId: m.lastCompleted, status: 'succeeded', ms: m.lastCompletedAt });
    if (m.lastFailed && m.lastFailedAt !== null) {
      candidates.push({ runId: m.lastFailed, status: m.lastFailedReason === this.#o.canceledReason ? 'canceled' : 'failed', ms: m.lastFailedAt });
    }
    if (m.lastCanceledRun && m.lastCanceledAt !== null) candidates.push({ runId: m.lastCanceledRun, status: 'canceled', ms: m.lastCanceledAt });
    const newest = candidates.sort((a, b) => b.ms - a.ms)[0];
    if (newest) {
      const at = isoTime(newest.ms);
      if (!state.lastRun || state.lastRun.at < at) state.lastRun = { runId: newest.runId, status: newest.status, at };
    }
    const success = Math.max(m.lastSuccessAt ?? 0, m.lastCompletedAt ?? 0);
    if (success > 0) {
      const at = isoTime(success);
      if (state.lastSuccessAt === undefined || state.lastSuccessAt < at) state.lastSuccessAt = at;
    }
    if (m.durations) state.durations = m.durations;
    if (m.folds > 0) this.folded(m.name, m);
    if (m.missedThrough !== null) this.missed(m.name, m.missedThrough);
    this.#live.set(m.name, { waiting: m.waiting, delayed: m.delayed, active: m.active });
  }

  /** Refreshes every half second until `stop()`; a failed read (Redis down) is tried again at the next tick. */
  start(): void {
    this.#refreshLoop.start();
  }

  async stop(): Promise<void> {
    this.#refreshLoop.stop();
    await this.#refreshing?.catch(() => undefined);
  }
}
