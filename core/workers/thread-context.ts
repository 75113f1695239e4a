import { type ErrorCode, HostError, isHostError, toRunError } from '../contract/errors.js';
import { emitPayload, type HandlerLimits, overBytes, resultTooLarge } from '../contract/limits.js';
import type { Logger } from '../contract/logger.js';
import type { HostReader, JobContext } from '../contract/plugin.js';
import type { Page, Run } from '../contract/run.js';
import type { Stats } from '../contract/views.js';
import { OUT, type ReadMethod } from './protocol.js';

/**
 * A handler's `ctx` inside a worker thread: the same shape as inline. `params`, `runId`, `job`
 * and `attempt` were copied in; `signal` is aborted by a message from the main thread;
 * `progress`, `log` and `emit` are posted back; `ctx.host` reads are answered by the main thread
 * (so every method returns a promise). After the attempt settles or is aborted, progress is
 * dropped, as inline.
 */

/** What a context needs of its thread. */
export interface ThreadChannel {
  /** Queues an op (`OUT`) with its fields for the next batch to the main thread. */
  send(op: number, a: unknown, b?: unknown, c?: unknown, d?: unknown): void;
  /** Asks the main thread; resolves with its answer. */
  read(task: number, method: ReadMethod, arg: unknown): Promise<unknown>;
  /** A pino-shaped logger whose every call goes to `send` as task `task`'s. */
  logger(task: number): Logger;
}

export class ThreadContext implements JobContext<never> {
  readonly id: number;
  readonly runId: string;
  readonly job: string;
  readonly attempt: number;
  readonly params: never;
  /** The plugin version it runs (numbered by the pool). */
  readonly version: number;
  readonly #limits: HandlerLimits;
  readonly #channel: ThreadChannel;
  /** Settled or aborted: progress is dropped from here on. */
  #done = false;
  /** Its outcome was sent (once). */
  #settled = false;
  #controller: AbortController | undefined;
  #abortReason: HostError | undefined;
  #log: Logger | undefined;
  #host: HostReader | undefined;

  constructor(channel: ThreadChannel, id: number, version: number, job: string, runId: string, attempt: number, params: unknown, limits: HandlerLimits) {
    this.#channel = channel;
    this.#limits = limits;
    this.id = id;
    this.version = version;
    this.job = job;
    this.runId = runId;
    this.attempt = attempt;
    this.params = params as never;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get log(): Logger {
    return (this.#log ??= this.#channel.logger(this.id));
  }

  get host(): HostReader {
    const read = (method: ReadMethod, arg?: unknown): Promise<never> => this.#channel.read(this.id, method, arg) as Promise<never>;
    return (this.#host ??= {
      runs: (query) => read('runs', query ?? {}) as Promise<Page<Run>>,
      run: (id) => read('run', id) as Promise<Run | undefined>,
      stats: () => read('stats') as Promise<Stats>,
    });
  }

  progress(fraction: number, text?: string): void {
    if (this.#done) return;
    this.#channel.send(OUT.progress, this.id, Number(fraction), text === undefined ? undefined : String(text));
  }

  emit(event: string, payload?: unknown): void {
    // Too large: thrown in the handler, as inline; the payload never leaves the thread.
    const json = emitPayload(event, payload, this.#limits.maxEventBytes, this.log);
    if (json !== null) this.#channel.send(OUT.emit, this.id, String(event), json);
  }

  /** The main thread aborted the attempt: the signal fires; nothing the handler reports counts any more. */
  abort(code: string, message: string): void {
    this.#done = true;
    if (this.#abortReason !== undefined) return;
    this.#abortReason = new HostError(code as ErrorCode, message);
    this.#controller?.abort(this.#abortReason);
  }

  /**
   * Reports the handler's outcome, once. Sent even after an abort: the main thread ignores the
   * outcome then, but learns that the handler has let go (so its worker need not be terminated).
   */
  settle(ok: boolean, value: unknown, stray?: ErrorCode): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#done = true;
    if (ok) {
      let json: string | undefined;
      try {
        json = value === undefined || value === null ? undefined : JSON.stringify(value);
      } catch (err) {
        return this.#channel.send(OUT.done, this.id, 'RESULT_NOT_SERIALIZABLE', `the handler's result cannot be stored as JSON: ${toRunError(err).message}`);
      }
      // Measured here, on the one JSON text made of it: a result past the limit never crosses to the main thread.
      if (json !== undefined && overBytes(json, this.#limits.maxResultBytes)) {
        const error = resultTooLarge(json, this.#limits.maxResultBytes);
        return this.#channel.send(OUT.done, this.id, error.code, error.message);
      }
      return this.#channel.send(OUT.done, this.id, null, json ?? null);
    }
    const error = toRunError(value, stray ?? 'HANDLER_ERROR');
    const code = stray !== undefined && !isHostError(value) ? stray : error.code;
    this.#channel.send(OUT.done, this.id, code, error.message);
  }

  get settled(): boolean {
    return this.#settled;
  }
}
