import type { Backend } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { Run } from '../contract/run.js';
import type { RunLog } from '../contract/run-log.js';
import type { BulkFilter, BulkResult, Series, SeriesWindow } from '../contract/views.js';
import { cancelQueued, retryFailed } from './bulk.js';
import type { Bus } from './bus.js';
import type { RunLogs } from './run-logs.js';
import { SeriesIndex } from './series.js';

/**
 * What the host tells of runs over time, beyond one run: the series index (and reading history
 * back into it after a start), a run's log as kept, and the bulk actions on history.
 */

export interface InsightOptions {
  bus: Bus;
  clock: Clock;
  logger: Logger;
  backend(): Backend;
  logs: RunLogs;
  /** Whether a job of that name is registered now. */
  registered(job: string): boolean;
  /** Replays one failed run (`Host.retry`). */
  retry(id: string): Promise<{ runId: string }>;
  /** Throws SHUTTING_DOWN / NOT_STARTED when the host takes no new work. */
  accepting(): void;
}

export class Insight {
  readonly #o: InsightOptions;
  readonly #series: SeriesIndex;
  #backfill: Promise<unknown> | undefined;

  constructor(options: InsightOptions) {
    this.#o = options;
    this.#series = new SeriesIndex({
      bus: options.bus,
      clock: options.clock,
      logger: options.logger,
      waiting: (job) => {
        const load = options.backend().activeRuns(job);
        return load.active - load.running;
      },
    });
  }

  /**
   * Once the backend is open: the backlog as loaded, and history read back in the background (up
   * to `eventsSince`, when other hosts' events reach this one only from then).
   */
  start(jobs: Iterable<string>, eventsSince?: number): void {
    const backend = this.#o.backend();
    if (eventsSince !== undefined) this.#series.watchedFrom(eventsSince);
    this.#series.watch(new Set([...jobs, ...backend.jobStates().keys()]));
    this.#backfill = this.#series
      .backfill((query) => backend.listRuns(query))
      .catch((err: unknown) => {
        this.#o.logger.error({ err }, 'could not read history back for the run charts');
      });
  }

  /** Before the backend closes. */
  async stop(): Promise<void> {
    this.#series.close();
    await this.#backfill;
  }

  /** JOB_NOT_FOUND unless the job is registered or has runs on record (a removed job's history still counts). */
  #known(job: string | undefined): void {
    if (job !== undefined && !this.#o.registered(job) && !this.#series.knows(job) && !this.#o.backend().jobStates().has(job)) {
      throw new HostError('JOB_NOT_FOUND', `no job named "${job}"`, { job });
    }
  }

  series(window: SeriesWindow, job?: string): Series {
    this.#known(job);
    return this.#series.series(window, job);
  }

  async runLog(id: string): Promise<{ run: Run; log: RunLog }> {
    const backend = this.#o.backend();
    const run = await backend.getRun(id);
    if (!run) throw new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id });
    // Lines still waiting for their batch go now: a read sees everything logged so far.
    this.#o.logs.flush(id);
    return { run, log: (await backend.getLogs(id)) ?? { lines: [], dropped: 0 } };
  }

  #bulk(filter: BulkFilter): { backend: Backend; clock: Clock; retry: InsightOptions['retry'] } {
    this.#known(filter.job);
    return { backend: this.#o.backend(), clock: this.#o.clock, retry: this.#o.retry };
  }

  /**
   * A stopping host, or one whose backend cannot take writes (a full disk, Redis out of reach),
   * would refuse each run of a bulk action one by one: say it once, with a time to retry, as a
   * trigger would.
   */
  #canAct(filter: BulkFilter): void {
    if (filter.dryRun) return;
    this.#o.accepting();
    const unavailable = this.#o.backend().unavailable();
    if (unavailable) throw unavailable;
  }

  async retryFailed(filter: BulkFilter): Promise<BulkResult> {
    this.#canAct(filter);
    return retryFailed(this.#bulk(filter), filter);
  }

  async cancelQueued(filter: BulkFilter): Promise<BulkResult> {
    this.#canAct(filter);
    return cancelQueued(this.#bulk(filter), filter);
  }
}
