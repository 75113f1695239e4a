import type { DeduplicationOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AdmissionRules, Refusal } from '../contract/backend.js';
import type { Run } from '../contract/run.js';
import { JOB_FIELD } from './bullmq-internals.js';

/**
 * `debounce` in cluster mode (SPEC §13), on BullMQ's deduplication: the run is a delayed job
 * whose deduplication id is the job's debounce key, with `ttl` the window, `extend` (each trigger
 * keeps the key alive for another window) and `reschedule` (each trigger moves the waiting job's
 * time to a window from now, keeping its id). BullMQ's `replace` would put a new job (a new run
 * id) in place of the old one at every trigger, so the earlier triggers' answers would name a
 * run that no longer exists: `reschedule` keeps the one run every trigger answers with, and the
 * script below, in the same MULTI as the add, gives it the last trigger's params.
 *
 * The key expires when the run is due, so a trigger after that opens a new window. A trigger
 * that BullMQ deduplicated into a run that no longer waits for its time (it became due and was
 * started in between) is not merged into it: the script drops the stale key and `admit` adds the
 * trigger again, as the first of a new window.
 */

/** BullMQ's deduplication for a debounced run (its key, or none, names the window). */
export function debounceDedup(run: Run, rules: AdmissionRules): DeduplicationOptions {
  // The window lasts until the run is due: a `delay` past the debounce keeps it open that long too.
  const ttl = Math.max(rules.debounceMs ?? 0, Date.parse(run.runAt) - Date.parse(run.createdAt));
  return { id: `debounce:${run.key ?? ''}`, ttl, extend: true, reschedule: true };
}

/**
 * After BullMQ's add in the same MULTI. KEYS: the new run's job hash, the deduplication key, the
 * queue's delayed set, the job hash of the run read as holding the key before the MULTI (the new
 * run's own when none). ARGV: that holder's id ('' for none), the new run's data.
 * {0}: the run was added (no window was open). {1, holder}: merged, the holder has the new data.
 * {2}: deduplicated into a run other than the one read, or into one that no longer waits for its
 * time (then the key is dropped): add again.
 */
const DEBOUNCED = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {2} end
if holder and redis.call('ZSCORE', KEYS[3], holder) then
  redis.call('HSET', KEYS[4], '${JOB_FIELD.data}', ARGV[2])
  return {1, holder}
end
if holder then redis.call('DEL', KEYS[2]) end
return {2}`;

/** The debounce script, by command name (scripts.ts defines it with the others). */
export const DEBOUNCE_SCRIPTS = {
  jhDebounced: { keys: 4, lua: DEBOUNCED },
};

/**
 * The run holding a window's deduplication key, read before the add's MULTI so that the script
 * can be given its job hash (a script touches only the keys it is given).
 */
export async function debounceHolder(client: Redis, dedupKey: string): Promise<string> {
  return (await client.get(dedupKey)) ?? '';
}

/** Queues the script on the add's MULTI, after BullMQ's add (only debounced adds send it). */
export function queueDebounced(
  multi: unknown,
  keys: { jobKey: string; dedupKey: string; delayed: string; holderKey: string },
  holder: string,
  data: string,
): void {
  (multi as { jhDebounced(...args: string[]): unknown }).jhDebounced(keys.jobKey, keys.dedupKey, keys.delayed, keys.holderKey, holder, data);
}

/** What the script's reply means for the trigger: its answer, or `again` (add it as a new window). */
export function debounceVerdict(reply: unknown): Refusal | 'added' | 'again' {
  const [code, holder] = reply as [number, string?];
  if (code === 1 && holder) return { reason: 'debounced', detail: `merged into run ${holder}`, runId: holder };
  return code === 2 ? 'again' : 'added';
}
