import type { DeduplicationOptions } from 'bullmq';
import type { AdmissionRules, Refusal } from '../contract/backend.js';
import type { Run } from '../contract/run.js';

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
 * queue's delayed set. ARGV: the queue's key prefix (`<prefix>:<job>:`), the new run's data.
 * {0}: the run was added (no window was open). {1, holder}: merged, the holder has the new data.
 * {2}: deduplicated into a run that no longer waits for its time; the key is dropped (add again).
 */
const DEBOUNCED = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local holder = redis.call('GET', KEYS[2])
if holder and redis.call('ZSCORE', KEYS[3], holder) then
  redis.call('HSET', ARGV[1] .. holder, 'data', ARGV[2])
  return {1, holder}
end
if holder then redis.call('DEL', KEYS[2]) end
return {2}`;

/**
 * Queues the script on the add's MULTI, after BullMQ's add. An EVAL (Redis caches the compiled
 * script): only debounced adds send it, and jobhost's script table stays as it is.
 */
export function queueDebounced(multi: unknown, jobKey: string, dedupKey: string, delayed: string, queueBase: string, data: string): void {
  (multi as { eval(script: string, keys: number, ...args: string[]): unknown }).eval(DEBOUNCED, 3, jobKey, dedupKey, delayed, queueBase, data);
}

/** What the script's reply means for the trigger: its answer, or `again` (add it as a new window). */
export function debounceVerdict(reply: unknown): Refusal | 'added' | 'again' {
  const [code, holder] = reply as [number, string?];
  if (code === 1 && holder) return { reason: 'debounced', detail: `merged into run ${holder}`, runId: holder };
  return code === 2 ? 'again' : 'added';
}
