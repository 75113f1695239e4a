import type { Logger } from '../contract/logger.js';
import type { StoreWriteError } from '../contract/store-health.js';

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
