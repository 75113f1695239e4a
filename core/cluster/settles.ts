import type { Clock, Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { StoreWriteError } from '../contract/store-health.js';

/**
 * Whether `work` settles (resolves or rejects) within `ms`; the timer is cleared either way, and a
 * rejection after the wait is swallowed. Every wait on Redis at shutdown is bounded with it: a
 * reply that never comes (Redis killed, a network fault) must not hold a stop.
 */
export async function settlesWithin(clock: Clock, ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: Timer | undefined;
  const late = new Promise<false>((resolve) => (timer = clock.setTimer(Math.max(0, ms), () => resolve(false))));
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    timer?.cancel();
  }
}

/**
 * What a stop could not hand back to Redis (runs whose end was not written, deliveries in
 * flight): logged, and the write error the backend's health reports from then on (null: none).
 */
export function leftBehind(runs: string[], deliveries: string[], at: string, logger: Logger, redis: string): StoreWriteError | null {
  if (runs.length === 0 && deliveries.length === 0) return null;
  const message = `${runs.length} run(s) and ${deliveries.length} deliveries could not be handed back to Redis; other hosts take them over once their locks expire`;
  logger.warn(
    { code: 'BACKEND_UNAVAILABLE', redis, leftToOtherHosts: { runs, deliveries } },
    'stopped without handing everything back to Redis: other hosts take these over once their locks expire',
  );
  return { code: 'BACKEND_UNAVAILABLE', message, since: at, retryAfter: 0 };
}
