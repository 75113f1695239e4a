import { createRequire } from 'node:module';
import type * as BullMQ from 'bullmq';
import type * as IORedis from 'ioredis';
import { HostError } from '../contract/errors.js';

/**
 * BullMQ and ioredis, loaded by the redis backend alone: the engine's module graph reaches
 * cluster/ (and every plugin's `import … from 'jobhost'` reaches the engine), so a static import
 * here would make every local-backend start load both packages (~330 ms of CPU, measured; issue
 * 26). ioredis is CommonJS only, so it loads synchronously where the connections are built (the
 * backend's constructor is synchronous): the same module instance an ES import gets. BullMQ ships
 * two builds; it is imported as an ES module, once, when the backend opens, before anything
 * builds a queue, worker or job (`bullmq()` says so when something tries earlier).
 */

let bull: typeof BullMQ | undefined;
let redis: typeof IORedis | undefined;

function loadFailed(pkg: string, err: unknown): HostError {
  const message = err instanceof Error ? err.message : String(err);
  return new HostError(
    'DEPENDENCY_UNAVAILABLE',
    `backend.kind "redis" needs the package ${pkg}, which could not be loaded: ${message}`,
    { package: pkg },
    { cause: err },
  );
}

/** Imports BullMQ (once); the redis backend's `open()` awaits it first. */
export async function loadBullMQ(): Promise<void> {
  try {
    bull ??= await import('bullmq');
  } catch (err) {
    throw loadFailed('bullmq', err);
  }
}

/** BullMQ, once `loadBullMQ()` has run (it has whenever the backend is open). */
export function bullmq(): typeof BullMQ {
  if (!bull) throw new HostError('NOT_STARTED', 'the redis backend loads BullMQ when it opens: start the host first');
  return bull;
}

/** ioredis, required on first use (synchronous: the connections are built in the backend's constructor). */
export function ioredis(): typeof IORedis {
  try {
    redis ??= createRequire(import.meta.url)('ioredis') as typeof IORedis;
  } catch (err) {
    throw loadFailed('ioredis', err);
  }
  return redis;
}
