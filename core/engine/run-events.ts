import type { RunObserver, UntoldEnd } from '../contract/attempt.js';
import type { RunError } from '../contract/errors.js';
import { queuedData } from '../contract/events.js';
import type { NotifyStatus } from '../contract/notification.js';
import type { Run } from '../contract/run.js';
import { recordRunSpan } from '../contract/tracing.js';
import type { Bus } from './bus.js';
import type { RunLogs } from './run-logs.js';

/** What watches runs for alerts (`Alerts`, the `missed` rule): told of each start, end and settled outcome. */
export interface RunWatch {
  started(run: Run): void;
  finished(run: Run): void;
  settled(run: Run, outcome: NotifyStatus, untold?: UntoldEnd): void;
}

export interface RunEventsOptions {
  bus: Bus;
  /** Alert rules; none in tests that look at events alone. */
  watch?: RunWatch | undefined;
  /** Lines of a run still waiting to be sent go out before the run's state change (see RunLogs). */
  logs?: RunLogs | undefined;
}

/** An event's data with the run's trace id, when it has one (SPEC §15). */
function traced<D extends object>(run: Run, data: D): D {
  if (run.traceId !== undefined) (data as { traceId?: string }).traceId = run.traceId;
  return data;
}

/**
 * The engine's side of a backend's reports: each state change of a run becomes its bus event
 * (SPEC §5), and goes on to the alert rules, which turn outcomes into notifications.
 */
export class RunEvents implements RunObserver {
  readonly #o: RunEventsOptions;

  constructor(options: RunEventsOptions) {
    this.#o = options;
  }

  queued(run: Run, delayed: boolean): void {
    // Back in the queue after an attempt (a stop aborted it): that attempt's lines first.
    if (run.attempts.length > 0) this.#o.logs?.ended(run.id, false);
    this.#o.bus.emit('run.queued', queuedData(run, delayed));
  }

  started(run: Run): void {
    this.#o.bus.emit('run.started', traced(run, { job: run.job, runId: run.id, attempt: run.attempts.length }));
    this.#o.watch?.started(run);
  }

  progress(run: Run): void {
    this.#o.bus.emit('run.progress', traced(run, { job: run.job, runId: run.id, fraction: run.progress.fraction, text: run.progress.text }));
  }

  retrying(run: Run, attempt: number, delayMs: number, error: RunError): void {
    this.#o.logs?.ended(run.id, false);
    this.#o.bus.emit('run.retrying', traced(run, { job: run.job, runId: run.id, attempt, nextAttempt: attempt + 1, runAt: run.runAt, delayMs, error }));
  }

  finished(run: Run): void {
    this.#o.logs?.ended(run.id, true);
    const bus = this.#o.bus;
    if (run.status === 'succeeded') {
      bus.emit(
        'run.succeeded',
        traced(run, { job: run.job, runId: run.id, attempt: run.attempts.length, durationMs: run.durationMs ?? 0, result: run.result }),
      );
    } else if (run.status === 'failed') {
      bus.emit('run.failed', traced(run, { job: run.job, runId: run.id, attempt: run.attempts.length, durationMs: run.durationMs, error: run.error! }));
    } else {
      bus.emit('run.canceled', traced(run, { job: run.job, runId: run.id, reason: run.error?.message ?? 'canceled' }));
    }
    recordRunSpan(run);
    this.#o.watch?.finished(run);
  }

  settled(run: Run, outcome: NotifyStatus, untold?: UntoldEnd): void {
    this.#o.watch?.settled(run, outcome, untold);
  }
}
