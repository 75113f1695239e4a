import type { Redis } from 'ioredis';
import { MISSED_WATCHES_MAX, type MissedWatch, missedWatchText } from '../contract/backend.js';

/**
 * The `missed` rule's open watches of a job in Redis (`Backend.keepMissedWatch`): a sorted set of
 * watches as text, scored by deadline, so any host's write keeps the others'. A keep drops the
 * watches already due (the host that kept them was up to see them) and all but the newest
 * MISSED_WATCHES_MAX; a drop names the watch as it was kept.
 */

export async function keepWatch(redis: Redis, key: string, watch: MissedWatch, now: number): Promise<void> {
  await redis
    .multi()
    .zadd(key, watch.deadline, missedWatchText(watch))
    .zremrangebyscore(key, '-inf', `(${now}`)
    .zremrangebyrank(key, 0, -(MISSED_WATCHES_MAX + 1))
    // Gone a week after the deadline of the watch kept last (a job removed, or the rule dropped):
    // the week covers a watch kept before it with a later deadline (a missedAfter shortened).
    .pexpireat(key, Math.max(watch.deadline, now) + 7 * 86_400_000)
    .exec();
}

export async function dropWatch(redis: Redis, key: string, watch: MissedWatch): Promise<void> {
  await redis.zrem(key, missedWatchText(watch));
}

/** The job's watches, oldest fire first (one per fire). */
export async function readWatches(redis: Redis, key: string): Promise<MissedWatch[]> {
  const byFire = new Map<number, MissedWatch>();
  for (const member of await redis.zrange(key, 0, -1)) {
    const w = parseWatch(member);
    if (w) byFire.set(w.fireAt, w);
  }
  return [...byFire.values()].sort((a, b) => a.fireAt - b.fireAt);
}

/** A member of a job's missed watches, narrowed once; anything else (changed from outside) is skipped. */
function parseWatch(member: string): MissedWatch | undefined {
  let v: unknown;
  try {
    v = JSON.parse(member);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { fireAt, deadline, runId, reason } = v as Record<string, unknown>;
  if (typeof fireAt !== 'number' || typeof deadline !== 'number' || typeof reason !== 'string') return undefined;
  if (runId !== null && typeof runId !== 'string') return undefined;
  return { fireAt, deadline, runId, reason };
}
