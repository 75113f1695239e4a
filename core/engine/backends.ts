import { createRedisBackend } from '../cluster/redis-backend.js';
import type { Backend } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import type { Logger } from '../contract/logger.js';
import { createLocalBackend, type LocalBackendOptions } from '../store/local-backend.js';

/**
 * Where the engine picks its backend: the one module of `engine/` that knows any implementation
 * (the layer rules allow `store/` and `cluster/` here only): `backend.kind` in the config.
 */

/** Store tuning (segment size, checkpoint size), mostly for tests and benchmarks. */
export type BackendTuning = NonNullable<LocalBackendOptions['store']>;

export interface BackendContext {
  /** The store directory, resolved; null keeps everything in memory. */
  dir: string | null;
  tuning: BackendTuning | undefined;
  clock: Clock;
  random: () => number;
  logger: Logger;
  /** This host's id (`cluster.id`). */
  hostId: string;
}

/** The backend the config asks for: the local store, or BullMQ on Redis (cluster mode). */
export function createBackend(config: Config, context: BackendContext): Backend {
  if (config.backend.kind === 'redis') {
    return createRedisBackend({
      config: config.backend,
      hostId: context.hostId,
      keepRuns: config.store.keepRuns,
      keepDays: config.store.keepDays,
      concurrency: config.concurrency,
      queues: config.queues,
      random: context.random,
      logger: context.logger,
      deliveryConcurrency: config.notifications.concurrency,
    });
  }
  return createLocalBackend({
    dir: context.dir,
    fsync: config.store.fsync,
    keepRuns: config.store.keepRuns,
    keepDays: config.store.keepDays,
    store: context.tuning,
    concurrency: config.concurrency,
    queues: config.queues,
    clock: context.clock,
    random: context.random,
    logger: context.logger,
    hostId: context.hostId,
    deliveryConcurrency: config.notifications.concurrency,
  });
}
