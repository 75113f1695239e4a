import type { Queue } from 'bullmq';
import type { Clock, Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { History } from './history.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/** Hosts take turns pruning the history index and ageing out runs of idle queues, this often. */
const SWEEP_MS = 60_000;

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
 * ends, so a queue that went idle keeps its runs past keepDays, and index entries of removed runs
 * stay. Once a minute one host (whichever takes the turn key first) cleans both.
 */
export class Sweeper {
  readonly #o: SweeperOptions;
  #timer: Timer | undefined;
  #stopped = false;

  constructor(options: SweeperOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(SWEEP_MS, () => {
      this.#sweep().catch((err: unknown) => this.#o.logger.debug({ err }, 'retention sweep failed'));
      this.start();
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }

  async #sweep(): Promise<void> {
    const { redis, keys, hostId, keepDays, history } = this.#o;
    const won = await redis.set(keys.sweep, hostId, 'PX', SWEEP_MS - 1000, 'NX');
    if (won !== 'OK') return;
    await history.pruneIndex(1000);
    if (keepDays <= 0) return;
    const ageMs = keepDays * 86_400_000;
    for (const queue of this.#o.queues()) {
      await queue.clean(ageMs, 1000, 'completed');
      await queue.clean(ageMs, 1000, 'failed');
    }
  }
}
