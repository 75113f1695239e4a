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

  /** BullMQ refused the end of attempt `attempt` of `run` made here (`code`: its answer, -1, -2, -3 or -6). */
  refused(run: Run, attempt: number, code: number): void {
    this.#count++;
    const fields = { code: 'LATE_FINISH', job: run.job, runId: run.id, attempt, host: this.#o.hostId, bullmqCode: code };
    const message =
      'a late finish was refused: another host took the run over while this host held it without reaching Redis (its lock lapsed); the record of the new owner stands';
    // BullMQ's `processedBy` names the host that took the run last.
    this.#o.commands.hget(this.#o.keys.queue(run.job, run.id), 'pb').then(
      (owner) => this.#o.logger.warn({ ...fields, owner }, message),
      () => this.#o.logger.warn({ ...fields, owner: null }, message),
    );
  }
}
