import type { Clock } from '../contract/clock.js';
import type { RateLimit } from '../contract/plugin-schema.js';
import { WORKER_LIMIT_UNTIL } from './bullmq-internals.js';
import type { JobQueue } from './job-queues.js';

/**
 * `rateLimit` in cluster mode (SPEC §13) is BullMQ's own limiter on the job's queue, global
 * across every worker of every host: `Queue.setGlobalRateLimit(max, duration)` writes it to the
 * queue's meta, and BullMQ's move-to-active script (a fetch, or the next run taken in the write
 * that ends one) counts each start in the queue's limiter key (a counter that expires `duration`
 * after the first start of a window) and hands out nothing while it is at `max`. One BullMQ queue
 * per job (job-queues.ts), so the limit is the job's alone. Runs held back stay waiting in Redis.
 *
 * A worker that found its queue limited keeps the time the window closes (its private
 * `limitUntil`, BullMQ 6.7; capped at its `maximumRateLimitDelay`, 30 s): the host's dispatcher,
 * which never blocks on Redis, is woken then to fetch again.
 */

const applied = new WeakMap<JobQueue, string>();

/** Brings the queue's global rate limit in line with the job's definition (removed when it has none); the caller then wakes the job. */
export async function syncRateLimit(jq: JobQueue, limit: RateLimit | undefined): Promise<void> {
  const want = limit ? `${limit.max}/${limit.perMs}` : '';
  if (applied.get(jq) === want) return;
  if (limit) await jq.queue.setGlobalRateLimit(limit.max, limit.perMs);
  else await jq.queue.removeGlobalRateLimit();
  // A worker that found the old limit reached fetches nothing until that window closes: a lifted
  // or raised limit applies to the runs it holds at once (as on one host), so it may fetch again
  // now (the caller wakes the job); at a limit still reached, the fetch finds it so again. Each
  // host applies its own config file's edit so (the same edit on every host: see drift).
  (jq.worker as unknown as Record<typeof WORKER_LIMIT_UNTIL, number>)[WORKER_LIMIT_UNTIL] = 0;
  applied.set(jq, want);
}

/** How long (ms) this host's worker of `jq` still holds off because its queue is at its limit; 0 when it is not. */
export function rateLimitWait(jq: JobQueue): number {
  if (jq.def.rateLimit === undefined) return 0;
  const until = (jq.worker as unknown as Record<typeof WORKER_LIMIT_UNTIL, number | undefined>)[WORKER_LIMIT_UNTIL] ?? 0;
  return Math.max(0, until - Date.now());
}

/** The job's load with the waiting runs its limit holds back (all its ready runs, while the limit holds here). */
export function withRateLimited(
  load: { active: number; running: number; waiting?: number },
  jq: JobQueue | undefined,
): { active: number; running: number; rateLimited?: number } {
  if (!jq || rateLimitWait(jq) === 0) return load;
  return { ...load, rateLimited: load.waiting ?? load.active - load.running };
}

/** A fetch came back empty: when the queue is at its limit, the job is woken (on the host's clock) as the window closes. */
export function wakeAfterLimit(jq: JobQueue, clock: Clock, timers: { arm(name: string, at: number): void }): void {
  const wait = rateLimitWait(jq);
  if (wait > 0) timers.arm(jq.name, clock.now() + wait);
}
