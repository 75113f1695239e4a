import { z } from 'zod';
import type { AttemptExecutor, AttemptHandle, AttemptReporter, AttemptTask } from '../contract/attempt.js';
import type { Clock, Timer } from '../contract/clock.js';
import type { ErrorCode, HostError } from '../contract/errors.js';
import type { HandlerLimits } from '../contract/limits.js';
import type { Logger } from '../contract/logger.js';
import type { HostReader } from '../contract/plugin.js';
import type { HandlerSource } from '../contract/plugin-source.js';
import { LOG_LEVELS, type LogLevel } from '../contract/run-log.js';
import { runQuerySchema } from '../contract/run-query.js';
import { logFields } from '../contract/tracing.js';
import { type PoolEvents, WorkerPool } from './pool.js';
import type { ReadMethod } from './protocol.js';
import { type DeathReason, PoolTask } from './slot.js';

/**
 * Runs attempts in the pool of worker threads (`isolation: 'worker'`), behind the same
 * `AttemptExecutor` interface as the inline executor. It answers what a handler's `ctx` asks of
 * the main thread (log lines, emitted events, `ctx.host` reads, progress) and enforces aborts:
 * a timeout, cancel or shutdown aborts the handler's signal in its thread, and if the handler
 * has not settled within `graceMs` (on the host's clock) its thread is terminated and replaced.
 * The pool starts on the first attempt, so a host whose jobs all run inline starts no thread.
 */

export interface WorkerExecutorOptions {
  logger: Logger;
  clock: Clock;
  /** `ctx.host`: read access to history. */
  reader: HostReader;
  /** `ctx.emit(event, payload)` from a handler of run `runId`. */
  publish(event: string, payload: unknown, runId: string): void;
  /** The limits each attempt starts under (read per attempt). */
  limits(): HandlerLimits;
  /** A `ctx.log` call of a live attempt, for the run's log (`ExecutorOptions.log`). */
  log?(task: AttemptTask, level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void;
  size: number;
  /** Threads at most (see `PoolOptions.max`). */
  max: number;
  graceMs: number;
  maxMemoryMb: number;
  nice: number;
  /** URL of jobhost's `core/index` without extension. */
  coreIndex: string;
}

/** What a worker may ask through `ctx.host.runs(query)`: checked before it reaches the history. */
const LEVELS: ReadonlySet<string> = new Set(LOG_LEVELS);

/** One attempt in a worker thread, and its handle. */
class WorkerAttempt extends PoolTask implements AttemptHandle {
  readonly task: AttemptTask;
  readonly reporter: AttemptReporter<AttemptTask>;
  readonly #executor: WorkerExecutor;
  /** The backend aborted it: nothing it reports counts any more. */
  aborted = false;
  /** Its handler let go (or its thread died). */
  ended = false;
  grace: Timer | undefined;
  #log: Logger | undefined;

  constructor(executor: WorkerExecutor, id: number, source: HandlerSource, task: AttemptTask, reporter: AttemptReporter<AttemptTask>, limits: HandlerLimits) {
    super(id, source, task.run.job, task.run.id, task.attempt, task.run.params, limits);
    this.#executor = executor;
    this.task = task;
    this.reporter = reporter;
  }

  get log(): Logger {
    return (this.#log ??= this.#executor.logger.child({ job: this.job, runId: this.runId, attempt: this.attempt, ...logFields(this.traceparent) }));
  }

  abort(reason: HostError): void {
    if (this.aborted) return;
    this.aborted = true;
    if (!this.ended) this.#executor.abort(this, reason);
  }
}

export class WorkerExecutor implements AttemptExecutor, PoolEvents {
  readonly logger: Logger;
  readonly #o: WorkerExecutorOptions;
  #pool: WorkerPool | undefined;
  #nextId = 0;

  constructor(options: WorkerExecutorOptions) {
    this.#o = options;
    this.logger = options.logger;
  }

  get #threads(): WorkerPool {
    this.#pool ??= new WorkerPool({
      size: this.#o.size,
      max: this.#o.max,
      maxMemoryMb: this.#o.maxMemoryMb,
      nice: this.#o.nice,
      logger: this.logger,
      coreIndex: this.#o.coreIndex,
      events: this,
    });
    return this.#pool;
  }

  /** Starts the pool's threads ahead of the first attempt. */
  warm(): void {
    this.#threads.warm();
  }

  /** The pool's threads and attempts in flight (all zero before the first attempt). */
  stats(): { size: number; threads: number; running: number; restarts: Record<DeathReason, number> } {
    return this.#pool?.stats() ?? { size: this.#o.size, threads: 0, running: 0, restarts: { grace: 0, exit: 0, memory: 0, crash: 0 } };
  }

  /** The heap in use of each thread, in bytes. */
  memory(): Promise<number[]> {
    return this.#pool?.memory() ?? Promise.resolve([]);
  }

  /** `traceparent`: the attempt's span, which the handler runs inside in its thread (SPEC §15). */
  execute<T extends AttemptTask>(task: T, reporter: AttemptReporter<T>, traceparent?: string): AttemptHandle {
    const source = task.job.source;
    if (!source) throw new Error(`job "${task.job.name}" has no plugin file a worker thread can load`);
    const attempt = new WorkerAttempt(this, ++this.#nextId, source, task, reporter as unknown as AttemptReporter<AttemptTask>, this.#o.limits());
    attempt.traceparent = traceparent;
    this.#threads.run(attempt);
    return attempt;
  }

  /** Aborts the handler's signal in its thread and gives it `graceMs` to let go. */
  abort(attempt: WorkerAttempt, reason: HostError): void {
    this.#threads.abort(attempt, reason.code, reason.message);
    attempt.grace = this.#o.clock.setTimer(this.#o.graceMs, () => {
      if (attempt.ended) return;
      attempt.log.warn(
        { code: reason.code, graceMs: this.#o.graceMs },
        'the handler did not settle within its grace after its abort; terminating its worker thread',
      );
      this.#threads.kill(attempt);
    });
  }

  /** Stops the pool: attempts still in flight get the grace to let go, then every thread is terminated. */
  async close(): Promise<void> {
    await this.#pool?.close(this.#o.graceMs);
  }

  // ----------------------------------------------------------------------------- from the pool

  done(task: PoolTask, code: string | null, text: string | null): void {
    const attempt = task as WorkerAttempt;
    this.#end(attempt);
    if (attempt.aborted) return;
    if (code !== null) return attempt.reporter.settled(attempt.task, null, { code, message: text ?? '' });
    let result: unknown = null;
    if (text !== null) result = JSON.parse(text);
    attempt.reporter.settled(attempt.task, result, null);
  }

  lost(task: PoolTask, code: ErrorCode, message: string): void {
    const attempt = task as WorkerAttempt;
    this.#end(attempt);
    if (!attempt.aborted) attempt.reporter.settled(attempt.task, null, { code, message });
  }

  #end(attempt: WorkerAttempt): void {
    attempt.ended = true;
    attempt.grace?.cancel();
    attempt.grace = undefined;
  }

  progress(task: PoolTask, fraction: number, text: string | undefined): void {
    const attempt = task as WorkerAttempt;
    if (!attempt.aborted) attempt.reporter.progress(attempt.task, fraction, text);
  }

  log(task: PoolTask | undefined, level: string, msg: string, fields: Record<string, unknown> | undefined): void {
    const label: LogLevel = LEVELS.has(level) ? (level as LogLevel) : 'info';
    const attempt = task as WorkerAttempt | undefined;
    // As inline: the run keeps what its handler logged while the attempt was live; the host's log gets every line.
    if (attempt && !attempt.aborted && !attempt.ended) this.#o.log?.(attempt.task, label, msg, fields);
    (attempt ? attempt.log : this.logger)[label](fields ?? {}, msg);
  }

  emit(task: PoolTask, event: string, payload: string | undefined): void {
    this.#o.publish(event, payload === undefined ? undefined : JSON.parse(payload), task.runId);
  }

  read(task: PoolTask, request: number, method: ReadMethod, arg: unknown): void {
    const reader = this.#o.reader;
    const answer = async (): Promise<unknown> => {
      if (method === 'run') return reader.run(z.string().parse(arg));
      if (method === 'runs') return reader.runs(runQuerySchema.parse(arg) as Parameters<HostReader['runs']>[0]);
      return reader.stats();
    };
    answer().then(
      (value) => this.#pool?.reply(task, request, true, value),
      (err: unknown) => this.#pool?.reply(task, request, false, err instanceof z.ZodError ? z.prettifyError(err) : ((err as Error)?.message ?? String(err))),
    );
  }
}
