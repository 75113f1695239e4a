import type { HostError, RunError } from './errors.js';
import type { Delivery, DeliveryError, Notification, NotifyStatus } from './notification.js';
import type { JobContext } from './plugin.js';
import type { NotifySpec, RateLimit } from './plugin-schema.js';
import type { HandlerSource, Isolation } from './plugin-source.js';
import type { RetryPolicy } from './retry.js';
import type { Run } from './run.js';

/**
 * What the backends and the engine hand each other around runs: a job as a backend needs it,
 * the run changes a backend reports (`RunObserver`), one attempt and the executor that runs it
 * (inline or in a worker thread); one delivery attempt and its outcome.
 */

/**
 * Settles an attempt with what its handler returned: a value, or a thenable's outcome. A thenable
 * whose `then` throws (or is a getter that throws) fails the attempt rather than the host.
 */
export function whenSettled(out: unknown, settle: (ok: boolean, value: unknown) => void): void {
  let then: unknown;
  try {
    then = out !== null && (typeof out === 'object' || typeof out === 'function') ? (out as { then?: unknown }).then : undefined;
  } catch (err) {
    return settle(false, err);
  }
  if (typeof then !== 'function') return settle(true, out);
  try {
    then.call(
      out,
      (value: unknown) => settle(true, value),
      (err: unknown) => settle(false, err),
    );
  } catch (err) {
    settle(false, err);
  }
}

/** What a backend needs of a job to start and retry its runs. */
export interface ExecutableJob {
  readonly name: string;
  readonly handler: (ctx: JobContext<never>) => unknown;
  /** Max simultaneous running runs (1 for `overlap: 'queue'`). */
  readonly concurrency: number;
  /** The weighted queue its runs wait in (`queues` in the config). */
  readonly queue: string;
  /** Per attempt; 0 = none. The backend aborts the attempt with `TIMEOUT` when it passes. */
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  /**
   * A success must be on record before the run's end is visible (a backend that keeps the
   * admission state apart from the runs writes it first): `once` and `cooldown` read it.
   */
  readonly once: boolean;
  readonly cooldownMs: number;
  readonly rateLimit?: RateLimit | undefined; // SPEC §13: at most `max` attempt starts per window; the others wait
  /**
   * Where the engine's executor runs the handler (absent: `inline`); a backend passes the job to
   * the executor as it got it and need not look at these two.
   */
  readonly isolation?: Isolation;
  /** The compiled plugin file a worker thread evaluates (null for a plugin registered in code). */
  readonly source?: HandlerSource | null;
  /** What the job's ends tell (SPEC §12): a backend that writes ends apart from notifications marks those that may be told. */
  readonly notify?: NotifySpec | null;
}

/**
 * A run's end found marked in the backend but not told: the host that ended it stopped (a kill,
 * a lost machine) before its notification was recorded, and another host tells it. The streaks
 * are those the end left (the alert rules read them, not the job's streaks now).
 */
export interface UntoldEnd {
  failStreak: number;
  endedStreak: number;
  /** The statuses of the run's notifications recorded before (not made again). */
  recorded: readonly NotifyStatus[];
}

/** State changes of runs, reported by the backend as they happen (see the ordering guarantee). */
export interface RunObserver {
  /** The run waits: new, or back from an attempt interrupted by a stop or a crash. */
  queued(run: Run, delayed: boolean): void;
  /** An attempt started: `run.attempts.at(-1)` is it. */
  started(run: Run): void;
  /** `run.progress` changed (throttled by the backend to ~10 per second per run). */
  progress(run: Run): void;
  /** The attempt `attempt` failed with `error`; the run waits `delayMs` for the next one. */
  retrying(run: Run, attempt: number, delayMs: number, error: RunError): void;
  /** The run reached `succeeded`, `failed` or `canceled` (its final record is saved). */
  finished(run: Run): void;
  /** After `retrying` or `finished`, once the job's state counts the outcome: time to notify (`untold`: see `UntoldEnd`). */
  settled(run: Run, outcome: NotifyStatus, untold?: UntoldEnd): void;
}

/** One attempt as the executor sees it. */
export interface AttemptTask {
  readonly run: Run;
  readonly job: ExecutableJob;
  /** 1-based. */
  readonly attempt: number;
}

/** Where an executor reports an attempt; one object per backend, told which task it is about. */
export interface AttemptReporter<T extends AttemptTask> {
  /** Exactly once per attempt unless it was aborted first: the JSON copy of the result, or the error. */
  settled(task: T, result: unknown, error: RunError | null): void;
  /** `ctx.progress(fraction, text)` while the attempt is live. */
  progress(task: T, fraction: number, text: string | undefined): void;
}

/** A started attempt. */
export interface AttemptHandle {
  /** Aborts the handler's signal with `reason`; the attempt reports nothing after this. */
  abort(reason: HostError): void;
}

/**
 * Runs attempts: builds the handler's `ctx`, calls it, and reports the outcome. Whatever the
 * handler does (throw, reject, hang, leave a stray rejection) ends its attempt, never the host.
 */
export interface AttemptExecutor {
  execute<T extends AttemptTask>(task: T, reporter: AttemptReporter<T>): AttemptHandle;
}

/** One attempt of one delivery, as `BackendHooks.deliver` gets it. */
export interface DeliveryAttempt {
  readonly notification: Notification;
  readonly delivery: Delivery;
  /** 1-based, within the delivery's current series. */
  readonly attempt: number;
}

/**
 * What became of an attempt: `retrying` after `delayMs` (the engine applies the retry policy,
 * `Retry-After` and the attempt limit), or final; or `waiting`: no attempt made (an earlier
 * delivery of the same incident to the same destination is still open), to be looked at again
 * after `delayMs`, the delivery's state and attempts untouched.
 */
export type DeliveryOutcome =
  | { status: 'waiting'; delayMs: number }
  | { status: 'delivered' }
  | { status: 'retrying'; delayMs: number; error: DeliveryError }
  | { status: 'dead'; error: DeliveryError };
