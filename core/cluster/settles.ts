import type { Clock, Timer } from '../contract/clock.js';

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
