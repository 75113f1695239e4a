import { AsyncLocalStorage } from 'node:async_hooks';
import { type AttemptExecutor, type AttemptHandle, type AttemptReporter, type AttemptTask, whenSettled } from '../contract/attempt.js';
import { type ErrorCode, HostError, isHostError, toRunError } from '../contract/errors.js';
import { emitPayload, type HandlerLimits, overBytes, resultTooLarge } from '../contract/limits.js';
import { capturingLogger } from '../contract/log-capture.js';
import type { Logger } from '../contract/logger.js';
import type { HostReader, JobContext } from '../contract/plugin.js';
import type { LogLevel } from '../contract/run-log.js';
import { logFields } from '../contract/tracing.js';

/**
 * The attempt executor: runs one attempt of a run in this thread. It builds the handler's `ctx`,
 * calls the handler so that whatever it does wrong (throw, reject) ends this attempt and never the
 * host, and reports the JSON copy of the result or the error. A stray rejection or a throw in a
 * timer reaches the process; `attributeStray` ties it to its attempt where the process's handlers
 * ask (`process-handlers.ts`, installed only when the host is told to). A backend decides when to call it and aborts it (cancel, timeout,
 * shutdown); this is the one module a pool of worker threads would replace.
 */

export interface ExecutorOptions {
  logger: Logger;
  /** `ctx.host`: read access to history. */
  reader: HostReader;
  /** `ctx.emit(event, payload)` from a handler of run `runId` (its payload checked against `maxEventBytes`). */
  publish(event: string, payload: unknown, runId: string): void;
  /** `limits.maxResultBytes` and `maxEventBytes` in effect, read as each attempt starts (default: none). */
  limits?(): HandlerLimits;
  /**
   * A line the handler wrote through `ctx.log` (any level), while its attempt is live: the run
   * keeps it (`RunLogs.line`). An executor in another thread turns the call into the same three
   * values with `logArgs()` and posts them here. Without it, lines only reach the logger.
   */
  log?(task: AttemptTask, level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void;
}

const UNLIMITED: HandlerLimits = { maxResultBytes: Number.POSITIVE_INFINITY, maxEventBytes: Number.POSITIVE_INFINITY };

/** The attempt a piece of async code belongs to, so stray rejections fail the right attempt. */
const attemptScope = new AsyncLocalStorage<AttemptContext>();

/**
 * Hosts of this process whose process handlers read `attemptScope` (`traceStrays`). With none,
 * attempts run outside it: on Node 20 the first `AsyncLocalStorage.run` turns on promise hooks
 * that tax every promise of the process (~6% of a disk-store HTTP trigger's CPU), for a lookup
 * that no one would make.
 */
let strayReaders = 0;

/** Attempts started from now on run in their scope, for `attributeStray`; returns the undo. */
export function traceStrays(): () => void {
  strayReaders++;
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    strayReaders--;
  };
}

/**
 * The `ctx` of one attempt, and its handle. A class rather than closures: one allocation per
 * attempt on the hot path, and the AbortController is only made when the handler reads `signal`.
 */
class AttemptContext implements JobContext<never>, AttemptHandle {
  readonly runId: string;
  readonly job: string;
  readonly attempt: number;
  readonly #executor: InlineExecutor;
  readonly #task: AttemptTask;
  readonly #reporter: AttemptReporter<AttemptTask>;
  /** Settled or aborted: anything after that (a late result, progress) is ignored. */
  #done = false;
  #controller: AbortController | undefined;
  #abortReason: unknown;
  #log: Logger | undefined;
  /** The attempt's span, when something traces: its log lines carry its ids. */
  traceparent: string | undefined;
  readonly #limits: HandlerLimits;

  constructor(executor: InlineExecutor, task: AttemptTask, reporter: AttemptReporter<AttemptTask>) {
    this.#executor = executor;
    this.#limits = executor.limits();
    this.#task = task;
    this.#reporter = reporter;
    this.runId = task.run.id;
    this.job = task.run.job;
    this.attempt = task.attempt;
  }

  get params(): never {
    return this.#task.run.params as never;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get host(): HostReader {
    return this.#executor.reader;
  }

  get log(): Logger {
    // Built on first use: most handlers never log, and the proxy costs an allocation or two.
    this.#log ??= capturingLogger(this.#executor.logger.child(attemptBindings(this.#task, this.traceparent)), (level, msg, fields) => {
      if (!this.#done) this.#executor.log(this.#task, level, msg, fields);
    });
    return this.#log;
  }

  progress(fraction: number, text?: string): void {
    if (!this.#done) this.#reporter.progress(this.#task, fraction, text);
  }

  emit(event: string, payload?: unknown): void {
    // Measured as in a worker thread, where the payload has to cross as JSON.
    if (emitPayload(event, payload, this.#limits.maxEventBytes, this.log) === null) return;
    this.#executor.publish(event, payload, this.runId);
  }

  abort(reason: HostError): void {
    this.#done = true;
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }

  /** Ends the attempt once with the handler's outcome; `code` marks a stray failure. False when it had ended already. */
  settle(ok: boolean, value: unknown, code?: ErrorCode): boolean {
    if (this.#done) return false;
    this.#done = true;
    if (ok) {
      let result: unknown;
      try {
        result = snapshotResult(value, this.#limits.maxResultBytes);
      } catch (err) {
        this.#reporter.settled(this.#task, null, toRunError(err));
        return true;
      }
      this.#reporter.settled(this.#task, result, null);
      return true;
    }
    let error = toRunError(value, code === undefined ? 'HANDLER_ERROR' : code);
    if (code !== undefined && !isHostError(value)) error = { code, message: error.message };
    this.#reporter.settled(this.#task, null, error);
    return true;
  }
}

/** Runs handlers in this thread (the `inline` isolation). */
export class InlineExecutor implements AttemptExecutor {
  readonly logger: Logger;
  readonly reader: HostReader;
  readonly #publish: ExecutorOptions['publish'];
  readonly log: NonNullable<ExecutorOptions['log']>;
  readonly limits: () => HandlerLimits;

  constructor(options: ExecutorOptions) {
    this.logger = options.logger;
    this.reader = options.reader;
    this.#publish = options.publish;
    this.log = options.log ?? (() => undefined);
    this.limits = options.limits ?? (() => UNLIMITED);
  }

  publish(event: string, payload: unknown, runId: string): void {
    this.#publish(event, payload, runId);
  }

  /** `traceparent`: the attempt's span (SPEC §15), for its log lines; the caller runs this inside it. */
  execute<T extends AttemptTask>(task: T, reporter: AttemptReporter<T>, traceparent?: string): AttemptHandle {
    const ctx = new AttemptContext(this, task, reporter as unknown as AttemptReporter<AttemptTask>);
    ctx.traceparent = traceparent;
    invoke(ctx, task.job.handler);
    return ctx;
  }
}

/** Calls the handler inside the attempt's scope; its result or failure settles the attempt. */
function invoke(ctx: AttemptContext, handler: (ctx: JobContext<never>) => unknown): void {
  let out: unknown;
  try {
    out = strayReaders > 0 ? attemptScope.run(ctx, handler, ctx) : handler(ctx);
  } catch (err) {
    ctx.settle(false, err);
    return;
  }
  whenSettled(out, (ok, value) => void ctx.settle(ok, value));
}

/** What a stray failure was traced to: the attempt whose code left it behind (see `attributeStray`). */
export interface StrayOwner {
  job: string;
  runId: string;
  attempt: number;
  /** True when the stray ended the attempt; false when the attempt had already ended (its outcome stands). */
  failed: boolean;
}

/**
 * Traces a stray rejection or throw (`process`'s unhandledRejection / uncaughtException) to the
 * inline attempt whose code left it, by its async context, and fails that attempt with `code`.
 * Undefined when no attempt's code is on the stack: the failure is the process's, not a run's.
 */
export function attributeStray(reason: unknown, code: 'UNHANDLED_REJECTION' | 'UNCAUGHT_EXCEPTION'): StrayOwner | undefined {
  const scope = attemptScope.getStore();
  if (!scope) return undefined;
  return { job: scope.job, runId: scope.runId, attempt: scope.attempt, failed: scope.settle(false, reason, code) };
}

/** What an attempt's log lines carry: its job, run, attempt, and its span when it has one (SPEC §15). */
function attemptBindings(task: AttemptTask, traceparent: string | undefined): Record<string, unknown> {
  const bindings = { job: task.run.job, runId: task.run.id, attempt: task.attempt };
  return traceparent === undefined ? bindings : { ...bindings, ...logFields(traceparent) };
}

/**
 * The JSON copy of a handler's result: what is stored is what was returned, whatever it mutates
 * later. The one JSON text made of it is also what is measured against `maxBytes`.
 */
function snapshotResult(result: unknown, maxBytes: number): unknown {
  if (result === undefined || result === null) return null;
  const t = typeof result;
  if (t === 'number' || t === 'boolean') return result;
  if (t === 'string') {
    // A string's JSON is itself plus quotes and escapes: measured as stored.
    const text = result as string;
    if (text.length * 3 + 2 > maxBytes) {
      const json = JSON.stringify(text);
      if (overBytes(json, maxBytes)) throw resultTooLarge(json, maxBytes);
    }
    return result;
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(result);
  } catch (err) {
    throw new HostError('RESULT_NOT_SERIALIZABLE', `the handler's result cannot be stored as JSON: ${toRunError(err).message}`);
  }
  if (json === undefined) return null;
  if (overBytes(json, maxBytes)) throw resultTooLarge(json, maxBytes);
  return JSON.parse(json);
}
