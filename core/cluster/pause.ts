import type { Queue } from 'bullmq';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import { type PausedSet, type PauseKind, PauseSets, type PauseStore } from '../contract/pause.js';
import type { Connections } from './connections.js';
import { Every } from './every.js';
import type { ClusterKeys } from './keys.js';
import { replicated } from './replication.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Pauses in cluster mode (SPEC §13), shared by every host through Redis:
 * - a job is a BullMQ queue of its own (`job-queues.ts`), so pausing a job is BullMQ's
 *   `Queue.pause()`: global, in Redis, and no host's worker takes a run of it until
 *   `Queue.resume()` (whose `resumed` entry in the queue's events stream wakes every host);
 * - a jobhost queue (`queues` in the config) is a weight in each host's dispatcher, not a BullMQ
 *   queue: its pause is a record every host reads, and a host's dispatcher picks no job of a
 *   paused queue. Another host learns of it from the relayed `queue.paused` event (`changed()`),
 *   and at the latest at its next read (every `REFRESH_MS`).
 * Both are fields of one hash (`job:<name>`, `queue:<name>`): what `GET /ready` lists, and what a
 * host starting reads. A job's record is written before BullMQ's pause and removed after its
 * resume, so a stop between the two leaves the record saying "paused", and the next host to
 * open pauses BullMQ's queue again (`open`): never a queue running while shown paused.
 */

const REFRESH_MS = 2000;

export interface ClusterPausesOptions {
  redis: ScriptedRedis;
  keys: ClusterKeys;
  connections: Connections;
  clock: Clock;
  logger: Logger;
  /** The BullMQ queue of a job, loaded here or not (`LoadedJobs.queueOf`). */
  queueOf(job: string): Queue;
  /** The jobs loaded here, with their weighted queue. */
  loaded(): Iterable<{ name: string; queue: string }>;
  /** A job's runs may be taken again (something holding it was lifted). */
  wake(job: string): void;
}

export class ClusterPauses implements PauseStore {
  readonly #o: ClusterPausesOptions;
  readonly #sets = new PauseSets();
  readonly #loop: Every;

  constructor(options: ClusterPausesOptions) {
    this.#o = options;
    this.#loop = new Every(options.clock, REFRESH_MS, () => this.#refresh(), options.logger, 'could not read the pauses');
  }

  get #key(): string {
    return this.#o.keys.pauses;
  }

  /** Reads the records and pauses BullMQ's queue of every job recorded paused (see above). */
  async open(): Promise<void> {
    await this.#refresh();
    for (const job of this.#sets.jobs) {
      const queue = this.#o.queueOf(job);
      if (!(await queue.isPaused())) await queue.pause();
    }
  }

  /** Reads the records again every `REFRESH_MS` until `close()`. */
  start(): void {
    this.#loop.start();
  }

  async close(): Promise<void> {
    this.#loop.stop();
  }

  holds(job: string, queue: string): boolean {
    return this.#sets.holds(job, queue);
  }

  isPaused(kind: PauseKind, name: string): boolean {
    return this.#sets.isPaused(kind, name);
  }

  list(): PausedSet {
    return this.#sets.list();
  }

  async set(kind: PauseKind, name: string, paused: boolean): Promise<boolean> {
    const { redis, connections } = this.#o;
    const field = `${kind}:${name}`;
    let changed: number;
    if (paused) {
      changed = await connections.call(() => redis.hset(this.#key, field, '1'));
      if (kind === 'job') await connections.call(() => this.#o.queueOf(name).pause());
    } else {
      if (kind === 'job') await connections.call(() => this.#o.queueOf(name).resume());
      changed = await connections.call(() => redis.hdel(this.#key, field));
    }
    await replicated(connections, redis);
    const set = this.#sets.of(kind);
    if (paused) set.add(name);
    else {
      set.delete(name);
      this.#wake(kind, name);
    }
    return changed > 0;
  }

  changed(): void {
    this.#refresh().catch((err: unknown) => this.#o.logger.debug({ err }, 'could not read the pauses'));
  }

  async #refresh(): Promise<void> {
    const fields = await this.#o.redis.hkeys(this.#key);
    const next = { jobs: [] as string[], queues: [] as string[] };
    for (const f of fields) {
      if (f.startsWith('job:')) next.jobs.push(f.slice(4));
      else if (f.startsWith('queue:')) next.queues.push(f.slice(6));
    }
    const changed = this.#sets.replace(next);
    for (const job of changed.jobs) if (!this.#sets.jobs.has(job)) this.#wake('job', job);
    for (const queue of changed.queues) if (!this.#sets.queues.has(queue)) this.#wake('queue', queue);
  }

  /** Jobs loaded here that `kind`/`name` held and nothing holds now get their chance. */
  #wake(kind: PauseKind, name: string): void {
    for (const jq of this.#o.loaded()) {
      if ((kind === 'job' ? jq.name === name : jq.queue === name) && !this.#sets.holds(jq.name, jq.queue)) this.#o.wake(jq.name);
    }
  }
}
