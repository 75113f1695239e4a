import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ExecutableJob } from '../contract/backend.js';
import type { Logger } from '../contract/logger.js';
import { CANCELED_REASON } from './keys.js';
import type { AttemptRecord } from './run-records.js';

/**
 * One BullMQ queue per job (its name is the job's), with one Worker per host that has the job
 * loaded. A queue per job is what makes a job's `concurrency` a cluster-wide limit: BullMQ's
 * global concurrency, enforced inside its move-to-active script for every worker of every host.
 */

/** The error a processor throws for a failed attempt: the attempt's record rides along as its stack. */
export class AttemptFailure extends Error {
  readonly record: Omit<AttemptRecord, 'jh'>;

  /**
   * `canceled`: no retry whatever attempts remain (BullMQ knows it by the name), and the failed
   * reason says canceled (history tells canceled from failed by it; the record keeps the message).
   */
  constructor(record: Omit<AttemptRecord, 'jh'>, stack: string, canceled = false) {
    super(canceled ? CANCELED_REASON : record.m);
    this.name = canceled ? 'UnrecoverableError' : 'AttemptFailure';
    this.record = record;
    // BullMQ appends `err.stack` to the job's stacktrace in the same write that fails or retries it.
    this.stack = stack;
  }
}

/**
 * A BullMQ Worker driven by the host's dispatcher (`getNextJob` + `processJob`) instead of its own
 * main loop: it never blocks, so it opens no blocking connection. Relies on BullMQ's
 * `createBackend`/`lockManager` (protected, pinned to the 6.7 minor; a test covers this path).
 */
class ManualWorker extends Worker {
  protected override createBackend(): void {
    this.backend = this.backendFactory(this.name, this.opts, { withBlockingConnection: false });
  }

  /** BullMQ renews the locks of the jobs this worker processes; its `run()` would start this. */
  startLockRenewal(): void {
    this.lockManager.start();
  }
}

/** Takes no signal: BullMQ then makes no AbortController per run (the host ends attempts itself). */
export type Processor = (job: Job) => Promise<unknown>;

export interface JobQueueSettings {
  prefix: string;
  /** The host id: BullMQ records it on each job it starts (`processedBy`). */
  hostId: string;
  lockDuration: number;
  stalledInterval: number;
}

/** A job this host has loaded: its queue (fail-fast connection) and its worker (patient connection). */
export class JobQueue {
  readonly name: string;
  readonly queue: Queue;
  readonly worker: ManualWorker;
  /** The definition runs start with (kept while runs of a removed job finish). */
  def: ExecutableJob;
  /** The global concurrency last set in Redis (null: not yet). */
  concurrencySet: number | null = null;
  /** Removed from this host: no new fetches; closed once its running attempts are done. */
  removed = false;
  /** Runs of this job running here, by id. */
  readonly running = new Set<string>();

  constructor(def: ExecutableJob, connections: { producer: Redis; commands: Redis }, settings: JobQueueSettings, processor: Processor, logger: Logger) {
    this.name = def.name;
    this.def = def;
    this.queue = new Queue(def.name, { connection: connections.producer, prefix: settings.prefix });
    this.worker = new ManualWorker(def.name, processor, {
      connection: connections.commands,
      prefix: settings.prefix,
      autorun: false,
      name: settings.hostId,
      lockDuration: settings.lockDuration,
      stalledInterval: settings.stalledInterval,
      // An interruption counts as an attempt (SPEC §4): the processor ends it INTERRUPTED and
      // BullMQ's retries decide, so BullMQ's own stall limit never needs to fail a run.
      maxStalledCount: 1000,
      // Lifetime completed/failed counts, kept by BullMQ inside the write that ends each run.
      metrics: { maxDataPoints: 60 },
      // A run's end that could not be written (Redis out of reach) is tried again this often.
      runRetryDelay: 1000,
      settings: {
        // Our retry delays (backoff, cap, jitter) are decided when the attempt fails.
        backoffStrategy: (_made: number, _type?: string, err?: Error) => (err instanceof AttemptFailure ? err.record.d : 0),
      },
    });
    // Without listeners BullMQ prints every reconnect error; the connections report the outage once.
    this.queue.on('error', (err) => logger.debug({ err, job: def.name }, 'BullMQ queue error'));
    this.worker.on('error', (err) => logger.debug({ err, job: def.name }, 'BullMQ worker error'));
  }

  /** Starts BullMQ's stalled-run checks and lock renewal for this job on this host. */
  start(): void {
    this.worker.startLockRenewal();
    this.worker.startStalledCheckTimer().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.worker.close(true).catch(() => undefined);
    await this.queue.close().catch(() => undefined);
  }
}
