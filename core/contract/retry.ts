/** A job's retry policy, resolved from plugin, config and defaults (durations in ms). */
export interface RetryPolicy {
  /** Total attempts, the first included. */
  attempts: number;
  backoff: 'fixed' | 'exponential';
  delayMs: number;
  maxDelayMs: number;
  /** Random spread of each delay, as a fraction (0.2 = ±20%). */
  jitter: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 1, backoff: 'exponential', delayMs: 1000, maxDelayMs: 3_600_000, jitter: 0.2 };

/** The delay before retry number `failedAttempt` (1-based), with backoff, cap and jitter. */
export function retryDelay(policy: RetryPolicy, failedAttempt: number, random: () => number): number {
  let delay = policy.backoff === 'exponential' ? policy.delayMs * 2 ** (failedAttempt - 1) : policy.delayMs;
  delay = Math.min(delay, policy.maxDelayMs);
  delay *= 1 + policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(delay, policy.maxDelayMs)));
}
