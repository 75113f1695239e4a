import { type HeldCounts, type JobState, MISSED_WATCHES_MAX, type MissedWatch, SLOW_TOLD_MAX } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { NotifyStatus } from '../contract/notification.js';
import { StormWindows } from '../contract/storm-windows.js';

export interface AlertMarksOptions {
  clock: Clock;
  logger: Logger;
  /** The job's state (the store's own object, changed in place). */
  job(name: string): JobState;
  /** Journals the job's flags; resolves once durable. */
  save(name: string): Promise<void>;
  /** Whether a run is still live here (queued or running). */
  live(runId: string): boolean;
}

/**
 * What the alert rules keep on one host (the local backend's side of `Backend.throttle`,
 * `claimSlow`, `claimMissed` and the missed watches): storm-control windows in the process, and
 * with each job's state (journal lines of its flags, and checkpoints) the runs told slow and the
 * schedule fires still watched, so that a restart neither tells them again nor forgets them.
 */
export class AlertMarks {
  readonly #o: AlertMarksOptions;
  readonly #storm = new StormWindows();

  constructor(options: AlertMarksOptions) {
    this.#o = options;
  }

  throttle(key: string, ms: number, status: NotifyStatus): Promise<number | HeldCounts> {
    return Promise.resolve(this.#storm.throttle(key, ms, status, this.#o.clock.now()));
  }

  takeHeld(key: string): Promise<HeldCounts> {
    return Promise.resolve(this.#storm.take(key, this.#o.clock.now()));
  }

  takeEnded(key: string): Promise<HeldCounts | number> {
    return Promise.resolve(this.#storm.takeEnded(key, this.#o.clock.now()));
  }

  /**
   * A run told slow that a restart queues again (a kill, or a stop's grace cut its attempt short)
   * is started again with its first start long past, and must not be told again. Only a run that
   * turns slow writes, and its end drops the mark (`ended`); marks of runs no longer live go with
   * the next one's too.
   */
  claimSlow(job: string, runId: string): Promise<boolean> {
    const state = this.#o.job(job);
    if (state.slowTold?.includes(runId)) return Promise.resolve(false);
    const kept = (state.slowTold ?? []).filter((id) => this.#o.live(id));
    kept.push(runId);
    state.slowTold = kept.slice(-SLOW_TOLD_MAX);
    return this.#o.save(job).then(() => true);
  }

  /** A run ended: its `slow` mark goes with it, so a job whose runs turned slow once does not carry them in every flags line after. */
  ended(job: string, runId: string): void {
    const state = this.#o.job(job);
    if (!state.slowTold?.includes(runId)) return;
    // Kept empty rather than deleted: a flags line without the field would leave an older list in place when the journal is read back.
    state.slowTold = state.slowTold.filter((id) => id !== runId);
    this.#o.save(job).catch((err: unknown) => this.#o.logger.debug({ err, job }, 'could not drop the slow mark of an ended run'));
  }

  async claimMissed(job: string, fireAt: number): Promise<boolean> {
    const state = this.#o.job(job);
    if ((state.missedThrough ?? -Infinity) >= fireAt) return false;
    state.missedThrough = fireAt;
    await this.#o.save(job);
    return true;
  }

  /** The newest MISSED_WATCHES_MAX watches not yet due. */
  keepMissedWatch(job: string, watch: MissedWatch, now: number): Promise<void> {
    const state = this.#o.job(job);
    const kept = (state.missedWatches ?? []).filter((w) => w.deadline >= now && w.fireAt !== watch.fireAt);
    kept.push({ ...watch });
    kept.sort((a, b) => a.fireAt - b.fireAt);
    state.missedWatches = kept.slice(-MISSED_WATCHES_MAX);
    return this.#o.save(job);
  }

  async dropMissedWatch(job: string, watch: MissedWatch): Promise<void> {
    const state = this.#o.job(job);
    if (!state.missedWatches?.some((w) => w.fireAt === watch.fireAt)) return;
    state.missedWatches = state.missedWatches.filter((w) => w.fireAt !== watch.fireAt);
    await this.#o.save(job);
  }

  missedWatches(job: string): Promise<MissedWatch[]> {
    return Promise.resolve((this.#o.job(job).missedWatches ?? []).map((w) => ({ ...w })));
  }
}
