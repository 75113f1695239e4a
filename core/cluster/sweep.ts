import type { Queue } from 'bullmq';
import type { Clock, Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { History } from './history.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/** Hosts take turns ageing out runs of idle queues (and walking the whole index), this often. */
const SWEEP_MS = 60_000;
/** How often a host looks at the history index's size (one ZCARD). */
const WATCH_MS = 1000;
/** Entries the index may gain since the last pass before another starts: the bound on the index's slack. */
export const PRUNE_AFTER = 1000;
/** Index entries one script call walks: each call is short, so Redis serves others in between. */
const PRUNE_BATCH = 1000;
/** A pass is one host's at a time (a lock key); it stops before its lock could lapse. */
const PASS_LOCK_MS = 60_000;

interface SweeperOptions {
  clock: Clock;
  redis: ScriptedRedis;
  keys: ClusterKeys;
  history: History;
  hostId: string;
  keepDays: number;
  logger: Logger;
  /** The queues of the jobs loaded on this host. */
  queues: () => Iterable<Queue>;
}

/**
 * Retention that BullMQ's removeOnComplete/removeOnFail leave undone: they act only when a run
 * ends, so a queue that went idle keeps its runs past keepDays, and the history index entries of
 * the runs they removed stay (each add writes two, in the cluster's index and its job's).
 *
 * The index is pruned at the pace runs are added, whatever the rate: every host looks at its
 * size each second, and once it has grown by PRUNE_AFTER entries since the last pass, one host
 * (whichever takes the lock) walks it from the oldest to the newest in steps of PRUNE_BATCH,
 * dropping the entries of removed runs, until it is caught up. So the index holds what retention
 * keeps, the runs still waiting or running, and at most about PRUNE_AFTER plus a second's adds
 * more. Once a minute one host (whichever takes the turn key first) also makes a pass and ages
 * out the runs of its queues past keepDays.
 */
export class Sweeper {
  readonly #o: SweeperOptions;
  #timer: Timer | undefined;
  #watch: Timer | undefined;
  #stopped = false;
  /** The index's size after the last pass this host saw end (or at its first look). */
  #base: number | undefined;
  #passing = false;

  constructor(options: SweeperOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(SWEEP_MS, () => {
      this.#sweep().catch((err: unknown) => this.#o.logger.debug({ err }, 'retention sweep failed'));
      this.start();
    });
    this.#look();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#watch?.cancel();
  }

  #look(): void {
    if (this.#stopped) return;
    this.#watch = this.#o.clock.setTimer(WATCH_MS, () => {
      this.#checkSize()
        .catch((err: unknown) => this.#o.logger.debug({ err }, 'history index prune failed'))
        .finally(() => this.#look());
    });
  }

  async #checkSize(): Promise<void> {
    const size = await this.#o.redis.zcard(this.#o.keys.runs);
    // Another host's pass shrank it: growth counts from there.
    if (this.#base === undefined || size < this.#base) this.#base = size;
    if (size - this.#base < PRUNE_AFTER) return;
    await this.#pass();
  }

  /** Walks the whole index once, dropping the entries of removed runs; false when another host holds the pass. */
  async #pass(): Promise<boolean> {
    const { redis, keys, hostId, history } = this.#o;
    if (this.#passing) return false;
    const lock = `${keys.sweep}:pass`;
    if ((await redis.set(lock, hostId, 'PX', PASS_LOCK_MS, 'NX')) !== 'OK') return false;
    this.#passing = true;
    const started = Date.now();
    try {
      for (;;) {
        const { done } = await history.pruneIndex(PRUNE_BATCH);
        if (done) break;
        // Well before the lock lapses: the walk's cursor stays in Redis, the next pass goes on from it.
        if (this.#stopped || Date.now() - started > PASS_LOCK_MS / 2) return true;
      }
      this.#base = await redis.zcard(keys.runs);
      return true;
    } finally {
      this.#passing = false;
      await redis.del(lock);
    }
  }

  async #sweep(): Promise<void> {
    const { redis, keys, hostId, keepDays } = this.#o;
    const won = await redis.set(keys.sweep, hostId, 'PX', SWEEP_MS - 1000, 'NX');
    if (won !== 'OK') return;
    await this.#pass();
    if (keepDays <= 0) return;
    const ageMs = keepDays * 86_400_000;
    for (const queue of this.#o.queues()) {
      await queue.clean(ageMs, 1000, 'completed');
      await queue.clean(ageMs, 1000, 'failed');
    }
  }
}
