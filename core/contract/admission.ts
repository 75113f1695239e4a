import type { AdmissionRules, JobState, Refusal } from './backend.js';

/**
 * The admission rules, in the order every backend applies them: disabled, once, cooldown,
 * duplicate key, overlap. A backend calls this inside its atomic check-and-add (a distributed
 * one may check in its own store and use this for the same reasons and wording).
 */

/** What the rules need to know about a job's waiting and running runs. */
export interface ActiveRuns {
  activeCount(job: string): number;
  /** The id of the oldest waiting or running run of the job. */
  firstActive(job: string): string | undefined;
  /** The id of the waiting or running run of the job holding dedup `key`. */
  byKey(job: string, key: string): string | undefined;
}

/** Why `job` refuses a new run now, or null. */
export function refusal(job: string, rules: AdmissionRules, state: Readonly<JobState>, active: ActiveRuns, key: string | null, now: number): Refusal | null {
  if (!rules.enabled) return { reason: 'disabled', detail: 'the job is disabled' };
  if (rules.once) {
    if (state.lastSuccessAt !== undefined) {
      return { reason: 'once', detail: 'the job may succeed once and already has', ...(state.lastRun ? { runId: state.lastRun.runId } : {}) };
    }
    const first = active.firstActive(job);
    if (first !== undefined) return { reason: 'once', detail: 'a run of this once-only job is already queued or running', runId: first };
  }
  if (rules.cooldownMs > 0 && state.lastSuccessAt !== undefined) {
    const until = Date.parse(state.lastSuccessAt) + rules.cooldownMs;
    if (now < until) return { reason: 'cooldown', detail: `cooling down until ${new Date(until).toISOString()}` };
  }
  if (key !== null) {
    const holder = active.byKey(job, key);
    if (holder !== undefined) return { reason: 'duplicate', detail: `run ${holder} with key "${key}" is already queued or running`, runId: holder };
  }
  if (rules.overlap === 'skip' && active.activeCount(job) > 0) {
    const first = active.firstActive(job);
    return { reason: 'overlap', detail: `run ${first ?? ''} is already queued or running`, ...(first !== undefined ? { runId: first } : {}) };
  }
  return null;
}
