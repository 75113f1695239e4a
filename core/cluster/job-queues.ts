import type { Job, Queue, Span, Worker, WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ExecutableJob } from '../contract/attempt.js';
import type { Logger } from '../contract/logger.js';
import { tellsEnd } from '../contract/plugin-schema.js';
import type { BullEnd, ChainStep, ChainTransaction } from './after-chain.js';
import { MOVE_TO_FINISHED } from './bullmq-internals.js';
import { EndBatch } from './end-batch.js';
import { CANCELED_REASON, ClusterKeys } from './keys.js';
import { leanMulti } from './lean-multi.js';
import { bullmq } from './libraries.js';
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

/** What the host uses of its worker beyond BullMQ's (the class is `manualWorkerClass()`). */
type ManualWorker = Worker & {
  folding: Folding | undefined;
  lost: ((id: string, code: number) => void) | undefined;
  startLockRenewal(): void;
  retrack(id: string, token: string, ts: number | undefined): void;
  untrack(id: string): void;
};

let manualWorker: (new (name: string, processor: Processor, opts: WorkerOptions) => ManualWorker) | undefined;

/**
 * A BullMQ Worker driven by the host's dispatcher (`getNextJob` + `processJob`) instead of its own
 * main loop: it never blocks, so it opens no blocking connection. Relies on BullMQ's
 * `createBackend`/`lockManager` (protected, pinned to the 6.7 minor; a test covers this path).
 * Defined on first use, once the backend has loaded BullMQ (`libraries.ts`).
 */
function manualWorkerClass(): new (name: string, processor: Processor, opts: WorkerOptions) => ManualWorker {
  manualWorker ??= class extends bullmq().Worker {
    /** Folds each run's end into its job's state in the MULTI that writes the end (set once the worker is built). */
    folding: Folding | undefined;

    protected override createBackend(): void {
      this.backend = this.backendFactory(this.name, this.opts, { withBlockingConnection: false });
      // BullMQ's `moveToFinished` (a run's final end, on whichever host ends it) goes through
      // `execCommand`: it is queued on a MULTI with jobhost's fold, so the end and the job's
      // failure streak are one write. Relies on the 6.7 backend's `execCommand(client, name, args)`
      // and `moveToFinished`'s arguments (14 keys: [10] the finished set, [11] the job hash; then
      // id, timestamp, property, value, target); a test covers this path.
      const backend = this.backend as unknown as { execCommand(client: Transactional, name: string, args: unknown[]): Promise<unknown> };
      const exec = backend.execCommand.bind(backend);
      backend.execCommand = (client, name, args) => {
        const folding = this.folding;
        if (name !== 'moveToFinished' || !folding) return exec(client, name, args);
        return foldedEnd(folding, exec, args);
      };
    }

    /**
     * BullMQ refused the end of an attempt here (see `LOST_RUN_CODES`): recorded before BullMQ
     * swallows the error (it only emits it), so the attempt's report can say the run was taken over.
     */
    protected override async handleFailed(err: Error, job: Job, token: string, fetchNext?: () => boolean, span?: Span): Promise<Job> {
      try {
        return await super.handleFailed(err, job, token, fetchNext, span);
      } catch (refusal) {
        const code = (refusal as { code?: unknown }).code;
        if (typeof code === 'number' && LOST_RUN_CODES.has(code)) this.lost?.(job.id ?? '', code);
        throw refusal;
      }
    }

    /** A run whose end BullMQ refused here: the lock was not this host's any more (set once the worker is built). */
    lost: ((id: string, code: number) => void) | undefined;

    /** BullMQ renews the locks of the jobs this worker processes; its `run()` would start this. */
    startLockRenewal(): void {
      this.lockManager.start();
    }

    /**
     * Renews the lock of run `id` (held with `token`) again: the end of an older attempt of the
     * same run here untracked it, as BullMQ keys the locks it renews by job id.
     */
    retrack(id: string, token: string, ts: number | undefined): void {
      this.lockManager.trackJob(id, token, ts ?? Date.now());
    }

    /** No more renewals of run `id`'s lock: its last attempt here ended (after a `retrack`). */
    untrack(id: string): void {
      this.lockManager.untrackJob(id);
    }
  };
  return manualWorker;
}

/**
 * BullMQ's answers to an end written with a token that no longer holds the run: the job is gone
 * (-1), its lock is gone (-2: it lapsed), it is not active (-3: moved back to wait as stalled),
 * or the lock is another worker's (-6: taken over). Each means the end arrived late.
 */
const LOST_RUN_CODES = new Set([-1, -2, -3, -6]);

/** What a job's worker needs to fold each end: the job's state key and where the new streak goes. */
export interface Folding {
  job: string;
  stateKey: string;
  /** The runs an end triggers (`after`), added in the MULTI that writes the end (after-chain.ts). */
  chain?: ((end: BullEnd) => Promise<ChainStep | undefined>) | undefined;
  /** The fold's answer for run `id` (the job's streaks with this end counted), before BullMQ returns. */
  folded(id: string, fold: Fold): void;
  /** Whether an end with `outcome` may be told, as the fold takes it (`a`, a streak length, or ''): see `jhFold`. */
  tells(outcome: 'succeeded' | 'failed' | 'canceled'): string;
  /** The untold ends (`untold.ts`) and who this host is (its id and start), which the fold marks them with. */
  untold: { set: string; ends: string; host: () => string };
  /** The connection the worker writes ends on (BullMQ's client wraps it). */
  connection: Redis;
}

/** The job's streaks as the fold left them; `folds` orders them (each counted end adds one). */
export interface Fold {
  failStreak: number;
  endedStreak: number;
  folds: number;
  /** The end was marked untold (see `jhFold`): its host drops the mark once it has told it. */
  marked?: boolean;
}

/** BullMQ's client (its ioredis wrapper): a MULTI from it takes BullMQ's commands and, from the connection, jobhost's scripts. */
interface Transactional {
  multi(): Transaction;
}

type Transaction = { exec(): Promise<Array<[Error | null, unknown]> | null> } & {
  jhFold(
    state: string,
    jobKey: string,
    finishedSet: string,
    untold: string,
    ends: string,
    runId: string,
    outcome: string,
    tell: string,
    host: string,
    job: string,
  ): unknown;
};

/** The ends of one turn, one MULTI per connection (the worker's own: every job's worker shares it). */
const ends = new EndBatch<Redis>(leanMulti);

async function foldedEnd(
  folding: Folding,
  exec: (client: Transactional, name: string, args: unknown[]) => Promise<unknown>,
  args: unknown[],
): Promise<unknown> {
  const at = MOVE_TO_FINISHED;
  const [finishedSet, jobKey, id, value, target] = [args[at.finishedSet], args[at.jobHash], args[at.id], args[at.value], args[at.target]].map(String);
  const outcome = target === 'completed' ? 'succeeded' : value === CANCELED_REASON ? 'canceled' : 'failed';
  const chain = await folding.chain?.({ job: folding.job, id, finishedSet, jobHash: jobKey, target, value, canceledReason: CANCELED_REASON } as BullEnd);
  // In this turn's MULTI with the other ends (end-batch.ts); its children's adds right after it.
  const replies = await ends.end(folding.connection, (transaction) => {
    const multi = transaction as unknown as ReturnType<Transactional['multi']>;
    // Queued on the MULTI (BullMQ's transaction wrapper queues and returns the MULTI); its reply is read below.
    void exec(multi as unknown as Transactional, 'moveToFinished', args);
    const { untold } = folding;
    multi.jhFold(
      folding.stateKey,
      jobKey ?? '',
      finishedSet ?? '',
      untold.set,
      untold.ends,
      id ?? '',
      outcome,
      folding.tells(outcome),
      untold.host(),
      folding.job,
    );
    chain?.queue(multi as unknown as ChainTransaction);
  });
  if (replies.length !== 2 + (chain?.count ?? 0)) throw new Error('the transaction ending the run was discarded');
  chain?.read(replies.slice(2));
  const [[endErr, end], [foldErr, fold]] = replies as [[Error | null, unknown], [Error | null, unknown]];
  if (endErr) throw endErr;
  if (!foldErr && Array.isArray(fold)) {
    const [, failStreak, endedStreak, folds, marked] = fold.map(Number);
    folding.folded(id ?? '', { failStreak: failStreak ?? 0, endedStreak: endedStreak ?? 0, folds: folds ?? 0, marked: marked === 1 });
  }
  return end;
}

/** Takes no signal: BullMQ then makes no AbortController per run (the host ends attempts itself). */
export type Processor = (job: Job) => Promise<unknown>;

export interface JobQueueSettings {
  prefix: string;
  /** What an end of the job's runs triggers (`after`), by job (see `Folding.chain`). */
  chain?: (job: string) => Folding['chain'];
  /** The host id: BullMQ records it on each job it starts (`processedBy`). */
  hostId: string;
  /** This host's id and start (`untold.ts`): a host restarted under the same id is another. */
  incarnation: () => string;
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
  /** The job's streaks as the write that ended each run here left them, by run id, until the run is reported. */
  readonly folds = new Map<string, Fold>();
  /** Runs whose end BullMQ refused here (the BullMQ code), by run id, until the run is reported. */
  readonly lost = new Map<string, number>();

  constructor(def: ExecutableJob, connections: { producer: Redis; commands: Redis }, settings: JobQueueSettings, processor: Processor, logger: Logger) {
    this.name = def.name;
    this.def = def;
    this.queue = new (bullmq().Queue)(def.name, { connection: connections.producer, prefix: settings.prefix });
    this.worker = new (manualWorkerClass())(def.name, processor, {
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
    const keys = new ClusterKeys(settings.prefix);
    this.worker.folding = {
      job: def.name,
      stateKey: keys.jobState(def.name),
      tells: (outcome) => {
        const tells = tellsEnd(this.def.notify, outcome);
        if (tells === 'never') return '';
        // A failure is told from the `after`-th of a streak on; a success that ends one, as `recovered`, from there too.
        return tells === 'recovery' || outcome === 'failed' ? String(this.def.notify?.after ?? 1) : 'a';
      },
      untold: { set: keys.untold, ends: keys.untoldEnds, host: settings.incarnation },
      chain: settings.chain?.(def.name),
      folded: (id, fold) => this.folds.set(id, fold),
      connection: connections.commands,
    };
    this.worker.lost = (id, code) => this.lost.set(id, code);
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
