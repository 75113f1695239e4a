import type { Queue } from 'bullmq';
import type { ExecutableJob } from '../contract/attempt.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Connections } from './connections.js';
import { JobQueue, type JobQueueSettings, type Processor } from './job-queues.js';
import type { ClusterKeys } from './keys.js';
import { bullmq } from './libraries.js';
import { syncRateLimit } from './limits-rate.js';
import type { ScriptedRedis } from './scripts.js';

interface LoadedJobsOptions {
  connections: Connections;
  producer: ScriptedRedis;
  keys: ClusterKeys;
  settings: JobQueueSettings;
  processor: Processor;
  clock: Clock;
  logger: Logger;
  /** The engine's definition of a job, or undefined once it is gone from this host. */
  definition: (name: string) => ExecutableJob | undefined;
  /** A job was loaded or updated here: follow its events, arm its delayed runs, look for runs. */
  loaded: (jq: JobQueue) => Promise<void>;
  /** A job left this host: stop taking its runs and following its events. */
  unloaded: (jq: JobQueue) => void;
}

/**
 * The jobs this host has loaded (a BullMQ queue and a worker each), kept in line with the
 * engine's: loaded, updated (the job's cluster-wide concurrency set in Redis) and unloaded, a
 * removed job's queue closed once its running runs are done. A change that could not reach Redis
 * stays pending and is tried again on the next `reconcile()`.
 */
export class LoadedJobs {
  readonly #o: LoadedJobsOptions;
  readonly #jobs = new Map<string, JobQueue>();
  /** Queues of jobs not loaded here, for triggers and cancels (no worker). */
  readonly #foreign = new Map<string, Queue>();
  /** Jobs to (re)load: registered before open, or whose last load failed (Redis out of reach). */
  readonly #dirty = new Set<string>();
  #reconciling = false;
  #closed = false;

  constructor(options: LoadedJobsOptions) {
    this.#o = options;
  }

  get(name: string): JobQueue | undefined {
    return this.#jobs.get(name);
  }

  has(name: string): boolean {
    return this.#jobs.has(name);
  }

  names(): IterableIterator<string> {
    return this.#jobs.keys();
  }

  values(): IterableIterator<JobQueue> {
    return this.#jobs.values();
  }

  /** The BullMQ queue of a job, loaded here or not (a job of other hosts gets a queue without a worker). */
  queueOf(job: string): Queue {
    const jq = this.#jobs.get(job);
    if (jq) return jq.queue;
    let q = this.#foreign.get(job);
    if (!q) {
      q = new (bullmq().Queue)(job, { connection: this.#o.connections.producer, prefix: this.#o.keys.prefix });
      q.on('error', () => undefined);
      this.#foreign.set(job, q);
    }
    return q;
  }

  /** Marks `name` to be brought in line on the next `reconcile()`. */
  changed(name: string): void {
    this.#dirty.add(name);
  }

  /** Brings the loaded jobs in line with the engine's: load, update, unload; stops at the first Redis failure. */
  async reconcile(): Promise<void> {
    if (this.#reconciling) return;
    this.#reconciling = true;
    try {
      while (this.#dirty.size > 0 && !this.#closed) {
        const name = this.#dirty.values().next().value as string;
        this.#dirty.delete(name);
        try {
          await this.#sync(name);
        } catch (err) {
          this.#dirty.add(name);
          this.#o.logger.warn({ err: this.#o.connections.toHostError(err), job: name }, 'could not set up the job on Redis; retrying');
          break;
        }
      }
    } finally {
      this.#reconciling = false;
    }
  }

  async #sync(name: string): Promise<void> {
    const def = this.#o.definition(name);
    let jq = this.#jobs.get(name);
    if (!def) {
      if (!jq) return;
      jq.removed = true;
      this.#o.unloaded(jq);
      if (jq.running.size > 0) return void this.#closeWhenIdle(jq);
      this.#jobs.delete(name);
      await jq.close();
      return;
    }
    if (!jq) {
      jq = new JobQueue(def, this.#o.connections, this.#o.settings, this.#o.processor, this.#o.logger);
      this.#jobs.set(name, jq);
      jq.start();
    }
    jq.def = def;
    jq.removed = false;
    if (jq.concurrencySet !== def.concurrency) {
      await this.#o.producer.sadd(this.#o.keys.jobs, name);
      await jq.queue.setGlobalConcurrency(def.concurrency);
      jq.concurrencySet = def.concurrency;
    }
    await syncRateLimit(jq, def.rateLimit);
    await this.#o.loaded(jq);
  }

  #closeWhenIdle(jq: JobQueue): void {
    const check = (): void => {
      // close() closes every loaded job itself.
      if (!jq.removed || this.#closed) return;
      if (jq.running.size > 0) return void this.#o.clock.setTimer(100, check);
      if (this.#jobs.get(jq.name) === jq) this.#jobs.delete(jq.name);
      void jq.close();
    };
    check();
  }

  /** Closes every loaded job's worker and queue, and the queues of other jobs. */
  async close(): Promise<void> {
    this.#closed = true;
    const loaded = async (): Promise<void> => {
      for (const jq of this.#jobs.values()) await jq.close();
    };
    await Promise.all([Promise.allSettled([...this.#foreign.values()].map((q) => q.close())), loaded()]);
  }
}
