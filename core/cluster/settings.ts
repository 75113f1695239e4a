import { HostError } from '../contract/errors.js';
import type { ClusterKeys } from './keys.js';
import { claimSchema } from './schema.js';
import type { ScriptedRedis } from './scripts.js';

/** How long the settings record outlives the last live host that refreshed it (ms). */
export const SETTINGS_TTL_MS = 60_000;

/**
 * Every host must use the same lock timing: BullMQ's stalled check is throttled cluster-wide by
 * the interval of whichever host ran it last. The first host sets them; live hosts keep them
 * alive; a host with other values does not start (BACKEND_SETTINGS_MISMATCH). Also takes this
 * host's id node (three base-36 digits from a counter every starting host increments). First of
 * all, checks the prefix's key schema (`schema.ts`).
 */
export async function claimSettings(
  redis: ScriptedRedis,
  keys: ClusterKeys,
  target: string,
  timing: { lockDuration: number; stalledInterval: number },
): Promise<string> {
  await claimSchema(redis, keys, target); // before anything else is written under the prefix
  const { lockDuration, stalledInterval } = timing;
  const key = keys.settings;
  const replies = await redis
    .multi()
    .hsetnx(key, 'lockDuration', String(lockDuration))
    .hsetnx(key, 'stalledInterval', String(stalledInterval))
    .hgetall(key)
    .pexpire(key, SETTINGS_TTL_MS)
    .incr(keys.hostSeq)
    .exec();
  const settings = (replies?.[2]?.[1] ?? {}) as Record<string, string>;
  const seq = Number(replies?.[4]?.[1] ?? 0);
  if (Number(settings['lockDuration']) !== lockDuration || Number(settings['stalledInterval']) !== stalledInterval) {
    throw new HostError(
      'BACKEND_SETTINGS_MISMATCH',
      `backend.lockDuration ${lockDuration} ms / stalledInterval ${stalledInterval} ms differ from the cluster's (${settings['lockDuration']} ms / ${settings['stalledInterval']} ms, set by the hosts already running on ${target} under prefix "${keys.prefix}"); every host must use the same`,
      { redis: target },
    );
  }
  return (seq % 36 ** 3).toString(36).padStart(3, '0');
}
