import type { RunObserver } from '../contract/attempt.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import { nextProgress, type ProgressThrottle, throttleProgress } from '../contract/progress.js';
import type { Run } from '../contract/run.js';
import type { JobQueue } from './job-queues.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * A running attempt's progress (`ctx.progress`): throttled to one write and one `run.progress`
 * per run every PROGRESS_INTERVAL_MS (the newest value always goes out), kept on the run's hash
 * only while this host holds the run with its token (`owned-writes.ts`): a host cut off from
 * Redis never overwrites, once back, the progress of the host that took the run over.
 */

/** What the progress of one attempt needs: its run, where it is kept, and its throttle state. */
export interface ProgressOf extends ProgressThrottle {
  readonly run: Run;
  readonly jq: JobQueue;
  /** BullMQ's lock token the attempt's host holds the run with. */
  readonly token: string;
  /** Set while the attempt is live. */
  readonly end: unknown;
}

export interface RunProgressOptions {
  keys: ClusterKeys;
  /** The worker's (patient) connection: a progress write lands before the run's end, which goes the same way. */
  commands: ScriptedRedis;
  clock: Clock;
  logger: Logger;
  observer(): RunObserver;
}

/** The lock key BullMQ keeps a running run's token in (`<prefix>:<job>:<id>:lock`). */
export function lockKey(keys: ClusterKeys, job: string, runId: string): string {
  return keys.queue(job, `${runId}:lock`);
}

export class RunProgress {
  readonly #o: RunProgressOptions;

  constructor(options: RunProgressOptions) {
    this.#o = options;
  }

  /** The handler reported progress: kept now, or by the trailing write the throttle has due (the throttle both backends share). */
  report(live: ProgressOf, fraction: number, text: string | undefined): void {
    if (!live.end) return;
    live.run.progress = nextProgress(live.run.progress, fraction, text);
    throttleProgress(this.#o.clock, live, () => {
      if (live.end) this.#write(live);
    });
  }

  /**
   * A progress value still waiting for its throttled write goes out now, ahead of the run's end:
   * both go through the worker's connection, so Redis has it before the end; and its run.progress
   * comes before the end's event.
   */
  flush(live: ProgressOf): void {
    if (!live.progressTimer) return;
    live.progressTimer.cancel();
    live.progressTimer = undefined;
    this.#write(live);
  }

  #write(live: ProgressOf): void {
    this.#store(live);
    this.#o.observer().progress(live.run);
  }

  /** On the run's hash (every host's GET /runs/:id shows it) and BullMQ's events stream, while the token holds the run. */
  #store(live: ProgressOf): void {
    const { jq, run } = live;
    const keys = jq.queue.keys;
    this.#o.commands
      .jhOwnedProgress(
        jq.queue.toKey(run.id),
        lockKey(this.#o.keys, run.job, run.id),
        keys['events']!,
        keys['meta']!,
        live.token,
        run.id,
        JSON.stringify(run.progress),
      )
      .catch((err: unknown) => this.#o.logger.debug({ err, runId: run.id }, 'could not write progress'));
  }
}
