import type { AttemptExecutor, AttemptHandle, AttemptReporter, AttemptTask, ExecutableJob } from '../contract/attempt.js';
import type { Clock } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import { type HostError, type RunError, toRunError } from '../contract/errors.js';
import type { HandlerLimits } from '../contract/limits.js';
import type { Logger } from '../contract/logger.js';
import { CORE_INDEX_URL } from '../contract/package-root.js';
import type { HostReader } from '../contract/plugin.js';
import type { LogLevel } from '../contract/run-log.js';
import { type AttemptSpan, startAttemptSpan, within } from '../contract/tracing.js';
import type { DeathReason } from '../workers/slot.js';
import { WorkerExecutor } from '../workers/worker-executor.js';
import { InlineExecutor } from './executor.js';

/**
 * The engine's attempt executor: each attempt runs where its job says (`EffectiveJob.isolation`),
 * in a worker thread or inline. A backend sees one `AttemptExecutor` either way.
 */

export interface ExecutorsOptions {
  logger: Logger;
  clock: Clock;
  reader: HostReader;
  publish(event: string, payload: unknown, runId: string): void;
  /** `limits.maxResultBytes` and `maxEventBytes` in effect, read as each attempt starts. */
  limits(): HandlerLimits;
  /** A `ctx.log` line of a live attempt, from either thread: the run keeps it. */
  log?(task: AttemptTask, level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void;
  workers: Config['workers'];
}

/** The worker pool: its size, live threads, attempts in flight, threads replaced since start (by reason). */
export interface WorkerStats {
  size: number;
  threads: number;
  running: number;
  restarts: Record<DeathReason, number>;
}

/** jobhost's own `core/index` (without extension): a plugin's import of it gets the plugin API in a worker. */
const CORE_INDEX = CORE_INDEX_URL;

export class Executors implements AttemptExecutor {
  readonly #inline: InlineExecutor;
  readonly #workers: WorkerExecutor;

  constructor(options: ExecutorsOptions) {
    this.#inline = new InlineExecutor(options);
    this.#workers = new WorkerExecutor({
      ...options,
      size: options.workers.size,
      max: Math.max(options.workers.size, options.workers.max ?? 2 * options.workers.size),
      graceMs: options.workers.grace,
      maxMemoryMb: options.workers.maxMemoryMb,
      nice: options.workers.nice,
      coreIndex: CORE_INDEX,
    });
  }

  execute<T extends AttemptTask>(task: T, reporter: AttemptReporter<T>): AttemptHandle {
    const span = startAttemptSpan(task.run.job, task.run.id, task.attempt, task.run.traceparent, task.run.host);
    const inWorker = task.job.isolation === 'worker' && Boolean(task.job.source);
    // Nothing traces (no SDK): no wrapping, the attempt runs as it would without tracing.
    if (span.traceparent === undefined) return inWorker ? this.#workers.execute(task, reporter) : this.#inline.execute(task, reporter);
    const traced = new TracedAttempt(span, reporter);
    // The handler runs inside the attempt's span: inline through the context manager, in a worker
    // thread from the span's traceparent.
    traced.handle = inWorker
      ? this.#workers.execute(task, traced, span.traceparent)
      : within(span.context, () => this.#inline.execute(task, traced, span.traceparent));
    return traced;
  }

  /** Starts the worker threads ahead of the first run, once one of `jobs` runs in them. */
  warm(jobs: Iterable<ExecutableJob>): void {
    for (const job of jobs) if (job.isolation === 'worker' && job.source) return this.#workers.warm();
  }

  /** After the backend drained: aborted handlers in threads get their grace, then the threads end. */
  async close(): Promise<void> {
    await this.#workers.close();
  }

  /** The worker pool: its threads, attempts in flight, and threads replaced since start (by reason). */
  workerStats(): WorkerStats {
    return this.#workers.stats();
  }

  /** The heap in use of each worker thread, in bytes. */
  workerMemory(): Promise<number[]> {
    return this.#workers.memory();
  }
}

/** A traced attempt's reporter and handle in one object (one allocation, not four closures): each ends the span first. */
class TracedAttempt<T extends AttemptTask> implements AttemptReporter<T>, AttemptHandle {
  readonly #span: AttemptSpan;
  readonly #reporter: AttemptReporter<T>;
  handle: AttemptHandle | undefined;
  constructor(span: AttemptSpan, reporter: AttemptReporter<T>) {
    this.#span = span;
    this.#reporter = reporter;
  }
  settled(task: T, result: unknown, error: RunError | null): void {
    this.#span.end(error);
    this.#reporter.settled(task, result, error);
  }
  progress(task: T, fraction: number, text: string | undefined): void {
    this.#reporter.progress(task, fraction, text);
  }
  abort(reason: HostError): void {
    this.#span.end(toRunError(reason));
    this.handle?.abort(reason);
  }
}
