import { AsyncLocalStorage } from 'node:async_hooks';
import { HostError, type ErrorCode } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { HostReader, JobContext, RetryPolicy } from '../contract/plugin.js';
import type { Run } from '../contract/run.js';

/**
 * One attempt of a run: the handler's `ctx`, calling the handler so that whatever it does wrong
 * (throw, reject, hang, leave a stray rejection or throw in a timer) ends this attempt and never
 * the host, retry delays, and the JSON copy of a result.
 */

/** What an attempt needs of the runner's record of a run. */
export interface AttemptSlot {
  readonly run: Run;
  /** Increments per attempt; a settle carrying an older token is a late result and is ignored. */
  token: number;
  state: string;
}

/** What an AttemptContext may call back into; one object per runner, not per attempt. */
export interface AttemptOwner<S extends AttemptSlot> {
  reader: HostReader;
  logger(): Logger;
  settle(slot: S, ok: boolean, value: unknown, code?: ErrorCode): void;
  progress(slot: S, fraction: number, text: string | undefined): void;
  publish(event: string, payload: unknown, run: Run): void;
}

/** The attempt a piece of async code belongs to, so stray rejections fail the right attempt. */
const attemptScope = new AsyncLocalStorage<AttemptContext<AttemptSlot>>();

/**
 * The `ctx` of one attempt. A class rather than closures: one allocation per attempt on the hot
 * path, and the AbortController is only made when the handler looks at `signal`.
 */
export class AttemptContext<S extends AttemptSlot> implements JobContext<never> {
  readonly runId: string;
  readonly job: string;
  readonly attempt: number;
  readonly #owner: AttemptOwner<S>;
  readonly #slot: S;
  readonly #token: number;
  #controller: AbortController | undefined;
  #abortReason: unknown;
  #log: Logger | undefined;

  constructor(owner: AttemptOwner<S>, slot: S, token: number, n: number) {
    this.#owner = owner;
    this.#slot = slot;
    this.#token = token;
    this.runId = slot.run.id;
    this.job = slot.run.job;
    this.attempt = n;
  }

  get params(): never {
    return this.#slot.run.params as never;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get host(): HostReader {
    return this.#owner.reader;
  }

  get log(): Logger {
    return (this.#log ??= this.#owner.logger().child({ job: this.job, runId: this.runId, attempt: this.attempt }));
  }

  /** Still the attempt the run is on (not timed out, canceled or superseded). */
  get current(): boolean {
    return this.#slot.token === this.#token && this.#slot.state === 'running';
  }

  progress(fraction: number, text?: string): void {
    if (this.current) this.#owner.progress(this.#slot, fraction, text);
  }

  emit(event: string, payload?: unknown): void {
    this.#owner.publish(event, payload, this.#slot.run);
  }

  abort(reason: unknown): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }

  timeout(ms: number): void {
    if (!this.current) return;
    const err = new HostError('TIMEOUT', `attempt ${this.attempt} timed out after ${ms}ms`);
    this.abort(err);
    this.settle(false, err);
  }

  /** Ends the attempt once; anything after that (a late result) is ignored. */
  settle(ok: boolean, value: unknown, code?: ErrorCode): void {
    if (this.current) this.#owner.settle(this.#slot, ok, value, code);
  }

  /** For stray rejections and throws traced to this attempt. */
  fail(err: unknown, code: ErrorCode): void {
    this.settle(false, err, code);
  }
}

/** Calls the handler inside the attempt's scope; its result or failure settles the attempt. */
export function invoke<S extends AttemptSlot>(ctx: AttemptContext<S>, handler: (ctx: JobContext<never>) => unknown): void {
  let out: unknown;
  try {
    out = attemptScope.run(ctx as unknown as AttemptContext<AttemptSlot>, handler, ctx);
  } catch (err) {
    ctx.settle(false, err);
    return;
  }
  if (typeof (out as PromiseLike<unknown> | undefined)?.then === 'function') {
    (out as PromiseLike<unknown>).then(
      (value) => ctx.settle(true, value),
      (err: unknown) => ctx.settle(false, err),
    );
  } else {
    ctx.settle(true, out);
  }
}

// ---------------------------------------------------------------------------------------------
// Process guards: a handler's stray rejection or throw fails its attempt and never the host.

const guardedLoggers = new Set<Logger>();

function onUnhandledRejection(reason: unknown): void {
  const scope = attemptScope.getStore();
  if (scope) return scope.fail(reason, 'UNHANDLED_REJECTION');
  for (const logger of guardedLoggers) logger.error({ err: reason }, 'unhandled promise rejection outside any run; ignored');
}

function onUncaughtException(err: unknown): void {
  const scope = attemptScope.getStore();
  if (scope) return scope.fail(err, 'UNCAUGHT_EXCEPTION');
  for (const logger of guardedLoggers) logger.error({ err }, 'uncaught exception outside any run; the host carries on');
}

export function installGuards(logger: Logger): void {
  if (guardedLoggers.size === 0) {
    process.on('unhandledRejection', onUnhandledRejection);
    process.on('uncaughtException', onUncaughtException);
  }
  guardedLoggers.add(logger);
}

export function removeGuards(logger: Logger): void {
  guardedLoggers.delete(logger);
  if (guardedLoggers.size === 0) {
    process.off('unhandledRejection', onUnhandledRejection);
    process.off('uncaughtException', onUncaughtException);
  }
}

// ---------------------------------------------------------------------------------------------

/** The delay before retry number `failedAttempt` (1-based), with backoff, cap and jitter. */
export function retryDelay(policy: RetryPolicy, failedAttempt: number, random: () => number): number {
  let delay = policy.backoff === 'exponential' ? policy.delayMs * 2 ** (failedAttempt - 1) : policy.delayMs;
  delay = Math.min(delay, policy.maxDelayMs);
  delay *= 1 + policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(delay, policy.maxDelayMs)));
}

export function snapshotResult(result: unknown): unknown {
  if (result === undefined || result === null) return null;
  const t = typeof result;
  if (t === 'string' || t === 'number' || t === 'boolean') return result;
  let json: string | undefined;
  try {
    json = JSON.stringify(result);
  } catch (err) {
    throw new HostError('RESULT_NOT_SERIALIZABLE', `the handler's result cannot be stored as JSON: ${(err as Error).message}`);
  }
  // A copy: what is stored is what was returned, whatever the handler mutates later.
  return json === undefined ? null : JSON.parse(json);
}

