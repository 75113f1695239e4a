import type { Backend } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { DueTimer } from '../contract/due-heap.js';
import { formatDuration } from '../contract/duration.js';
import type { Logger } from '../contract/logger.js';
import type { RunSource } from '../contract/run.js';
import type { Schedule } from '../schedule/cron.js';
import type { EffectiveJob } from './jobs.js';
import { wants } from './notify.js';

export interface MissedOptions {
  clock: Clock;
  logger: Logger;
  backend(): Backend;
  job(name: string): EffectiveJob | undefined;
  /** Sends the `missed` notification of a fire. */
  alert(job: string, fireAt: number, reason: string): void;
}

/** The default `missedAfter`: one period of the schedule at the fire, at most an hour. */
const MAX_DEFAULT_MS = 3_600_000;
/** Fires found missed at start are notified one by one up to this many per job; the rest are summed up in the last. */
const DOWNTIME_MAX = 20;
/** Starts remembered for a fire whose watch is not set yet: far more than one turn of the event loop starts. */
const EARLY_MAX = 10_000;

interface Watch {
  job: string;
  fireAt: number;
  /** The fire's run, until it starts; null when the fire made none. */
  runId: string | null;
  reason: string;
}

/** How long after `fireAt` a fire of `job` may take to start its run. */
export function missedAfter(job: EffectiveJob, schedule: Schedule, fireAt: number): number {
  if (job.notify?.missedAfter !== undefined) return job.notify.missedAfter;
  const next = schedule.next(fireAt);
  return Math.min(next === null ? MAX_DEFAULT_MS : Math.max(1000, next - fireAt), MAX_DEFAULT_MS);
}

/**
 * The `missed` rule (SPEC §12): each schedule fire of a job that asks for it is watched until
 * its run starts; a fire that made no run (refused by overlap, no room to record it) or whose
 * run has not started `missedAfter` after the fire time is missed, once per fire (the backend's
 * `claimMissed` says which host, and whether a restart already told). Fires the host (or every
 * host) was down for are found at start. A disabled job is never missed.
 */
export class Missed {
  readonly #o: MissedOptions;
  readonly #timer: DueTimer<Watch>;
  /** Watches whose run has not started, by run id. */
  readonly #byRun = new Map<string, Watch[]>();
  /** Runs that started before their fire's watch was set (a start can come before the add's promise resolves); bounded. */
  #early = new Set<string>();
  #stopped = false;

  constructor(options: MissedOptions) {
    this.#o = options;
    this.#timer = new DueTimer(options.clock, (w) => this.#due(w));
  }

  /**
   * A schedule fire of `name` at `fireAt` made run `runId`, or none (`runId` null, with why). A
   * catch-up run stands for every fire the host was down for that is not missed yet: it names them all.
   */
  fired(name: string, fireAt: number | readonly number[], runId: string | null, reason: string): void {
    const job = this.#watched(name);
    if (!job?.schedule) return;
    if (runId !== null && this.#early.delete(runId)) return;
    const watches = (typeof fireAt === 'number' ? [fireAt] : fireAt).map((at): Watch => ({ job: name, fireAt: at, runId, reason }));
    if (watches.length === 0) return;
    if (runId !== null) this.#byRun.set(runId, watches);
    for (const w of watches) this.#timer.push(w.fireAt + missedAfter(job, job.schedule, w.fireAt), w);
  }

  /**
   * A run started: its fire is not missed. Only a schedule's runs are kept for a watch set later
   * (a start is the hot path; a debounced fire's run waits out its window, so its watch is set first).
   */
  started(runId: string, source: RunSource): void {
    const watches = this.#byRun.get(runId);
    if (!watches) {
      if (source !== 'schedule' && source !== 'catch-up') return;
      if (this.#early.size >= EARLY_MAX) this.#early = new Set();
      this.#early.add(runId);
      return;
    }
    this.#byRun.delete(runId);
    for (const w of watches) {
      w.runId = null;
      w.reason = '';
    }
  }

  /**
   * At start: the fires of `name` after `since` (the last fire recorded) up to `through` came
   * while the host was down. Those past their `missedAfter` now were missed; the others are
   * returned, to be watched like any fire once the caller knows whether a catch-up run stands for
   * them (`fired`).
   */
  downtime(name: string, since: number, through: number): number[] {
    const job = this.#watched(name);
    if (!job?.schedule) return [];
    const now = this.#o.clock.now();
    const fires: number[] = [];
    const pending: number[] = [];
    let more = 0;
    let seen = 0;
    for (let at = job.schedule.next(since); at !== null && at <= through; at = job.schedule.next(at)) {
      // A every-second job down for days: the count stops here rather than hold up the start.
      if (++seen > 10_000) break;
      if (at + missedAfter(job, job.schedule, at) > now) {
        if (pending.length < DOWNTIME_MAX) pending.push(at);
      } else if (fires.length < DOWNTIME_MAX) fires.push(at);
      else more++;
    }
    const atLeast = seen > 10_000 ? 'at least ' : '';
    fires.forEach((at, i) => {
      const rest = i === fires.length - 1 && more > 0 ? ` (and ${atLeast}${more} later fire${more === 1 ? '' : 's'})` : '';
      this.#claim(name, at, `the host was down${rest}`);
    });
    return pending;
  }

  /** A job was enabled: the fires of its disabled stretch were never due, so none of them is missed. */
  enabled(name: string): void {
    const job = this.#watched(name);
    if (!job) return;
    this.#o
      .backend()
      .claimMissed(name, this.#o.clock.now())
      .catch((err: unknown) => this.#o.logger.warn({ err, job: name }, 'could not record where missed fires start again'));
  }

  stop(): void {
    this.#stopped = true;
    this.#timer.close();
    this.#byRun.clear();
  }

  /** The job, when it asks for `missed` and is enabled. */
  #watched(name: string): EffectiveJob | undefined {
    const job = this.#o.job(name);
    return job?.enabled && job.notify && wants(job.notify, 'missed') ? job : undefined;
  }

  #due(w: Watch): void {
    const started = w.runId === null && w.reason === '';
    if (w.runId !== null) {
      // A catch-up run's later fires stay watched: the run may still start before their time.
      const rest = this.#byRun.get(w.runId)?.filter((x) => x !== w);
      if (rest?.length) this.#byRun.set(w.runId, rest);
      else this.#byRun.delete(w.runId);
    }
    const job = this.#watched(w.job);
    if (started || !job?.schedule) return;
    const waited = formatDuration(missedAfter(job, job.schedule, w.fireAt));
    if (w.runId === null) return this.#claim(w.job, w.fireAt, w.reason);
    // This host sees only its own starts: on a shared backend the run may have started on another
    // host (or started here unseen), so the run itself says.
    const runId = w.runId;
    const deadline = w.fireAt + missedAfter(job, job.schedule, w.fireAt);
    const tell = (): void => {
      if (!this.#stopped) this.#claim(w.job, w.fireAt, `its run ${runId} had not started ${waited} after the fire`);
    };
    this.#o
      .backend()
      .getRun(runId)
      .then(
        (run) => {
          // Started in time (a start after the deadline, while this look was on its way, is still late).
          if (run?.startedAt && Date.parse(run.startedAt) <= deadline) return;
          tell();
        },
        // Out of reach (Redis down): told as the watch says rather than lost.
        tell,
      );
  }

  #claim(job: string, fireAt: number, reason: string): void {
    this.#o
      .backend()
      .claimMissed(job, fireAt)
      .then((mine) => {
        if (mine && !this.#stopped) this.#o.alert(job, fireAt, reason);
      })
      .catch((err: unknown) => this.#o.logger.warn({ err, job, fireAt: isoTime(fireAt) }, 'could not record a missed fire'));
  }
}
