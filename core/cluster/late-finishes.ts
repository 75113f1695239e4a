import type { Logger } from '../contract/logger.js';
import type { Run } from '../contract/run.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Late finishes (SPEC §11, partitions): an attempt that ended here after this host lost the run.
 * The host was cut off from Redis (or its event loop stalled) past `backend.lockDuration`, its
 * lock lapsed, and another host took the run over as stalled. When the link returned, BullMQ
 * refused the end this host wrote with its old lock token, and every write of jobhost's own made
 * with that token (`owned-writes.ts`) recorded nothing: the new owner's record stands. Each such
 * refusal is logged (warn, with the run, this host and the run's current holder) and counted
 * (`jobhost_late_finishes_total`).
 */

export interface LateFinishesOptions {
  hostId: string;
  keys: ClusterKeys;
  /** Where the run's current holder is read for the log line. */
  commands: ScriptedRedis;
  logger: Logger;
}

export class LateFinishes {
  readonly #o: LateFinishesOptions;
  #count = 0;

  constructor(options: LateFinishesOptions) {
    this.#o = options;
  }

  /** Late finishes refused since this host started. */
  get count(): number {
    return this.#count;
  }

  /**
   * BullMQ refused the end of attempt `attempt` of `run` made here (`code`: its answer, -1, -2, -3
   * or -6). Not a late finish when the run ended as this host's: the write of its end went through
   * and only its reply was lost with the link, so BullMQ's try again found it finished.
   */
  refused(run: Run, attempt: number, code: number): void {
    const fields = { code: 'LATE_FINISH', job: run.job, runId: run.id, attempt, host: this.#o.hostId, bullmqCode: code };
    const late = (owner: string | null): void => {
      this.#count++;
      this.#o.logger.warn(
        { ...fields, owner },
        'a late finish was refused: another host took the run over while this host held it without reaching Redis (its lock lapsed); the record of the new owner stands',
      );
    };
    // BullMQ's `processedBy` names the host that took the run last; `finishedOn` says it ended.
    this.#o.commands.hmget(this.#o.keys.queue(run.job, run.id), 'pb', 'finishedOn').then(
      ([owner, finishedOn]) => {
        if (owner !== this.#o.hostId || !finishedOn) return late(owner ?? null);
        this.#o.logger.info(
          { job: run.job, runId: run.id, attempt, host: this.#o.hostId, bullmqCode: code },
          'the end of the attempt was written before the link to Redis dropped (its reply was lost): BullMQ refused to write it again',
        );
      },
      () => late(null),
    );
  }
}
