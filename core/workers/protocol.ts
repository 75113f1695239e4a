import type { HandlerSource } from '../contract/plugin-source.js';

/**
 * What the main thread and a worker thread say to each other. Every message is one batch: what
 * one side produced in one turn of its event loop, so a thousand runs cost one `postMessage`
 * each way, not a thousand. Ops are small arrays (cheap to clone); what a handler hands back
 * (its result, log lines, emitted payloads) crosses as JSON text, made once in the worker,
 * which is also the check that it survives JSON.
 *
 * A batch to a worker starts with its sequence number; every batch from a worker starts with
 * the last sequence number it has read, so the pool sees a worker that has stopped reading
 * (a handler spinning on the CPU) and sends new runs elsewhere.
 */

/** Ops to a worker thread. */
export const IN = { load: 0, run: 1, abort: 2, reply: 3, memory: 4 } as const;

/** Ops from a worker thread. */
export const OUT = { done: 0, progress: 1, log: 2, emit: 3, read: 4, memory: 5 } as const;

export type ToWorker =
  /** A plugin version: evaluated on its first run in this thread, dropped once superseded and idle. */
  | [typeof IN.load, HandlerSource]
  | [typeof IN.run, task: number, key: string, job: string, runId: string, attempt: number, params: unknown]
  /** The attempt's signal is aborted with a HostError of this code. */
  | [typeof IN.abort, task: number, code: string, message: string]
  /** The answer to a `ctx.host` read: `ok` false carries an error message. */
  | [typeof IN.reply, request: number, ok: boolean, value: unknown]
  | [typeof IN.memory, request: number];

export type FromWorker =
  /** The handler settled: `code` null means success and `text` is the result's JSON (null: none); else `text` is the error message. */
  | [typeof OUT.done, task: number, code: string | null, text: string | null]
  | [typeof OUT.progress, task: number, fraction: number, text: string | undefined]
  /** A pino line of `ctx.log` (task 0: the thread itself). */
  | [typeof OUT.log, task: number, line: string]
  | [typeof OUT.emit, task: number, event: string, payload: string | undefined]
  | [typeof OUT.read, request: number, task: number, method: ReadMethod, arg: unknown]
  | [typeof OUT.memory, request: number, heapUsed: number];

export type ReadMethod = 'runs' | 'run' | 'stats';

/** A batch to a worker: its sequence number, then ops. */
export type BatchIn = [seq: number, ...ops: ToWorker[]];

/** A batch from a worker: the last sequence number it read, then ops. */
export type BatchOut = [acked: number, ...ops: FromWorker[]];

/** What a worker thread is started with. */
export interface ThreadData {
  /** The URL of jobhost's own `core/index` without its extension: a plugin's import of it gets `plugin-api.ts` in a worker. */
  coreIndex: string;
  /** pino, for `ctx.log` (lines travel to the host's logger). */
  pinoUrl: string;
  /** tsx's API, registered in the thread the first time a plugin imports a TypeScript module from outside the plugins directory. */
  tsxUrl: string | null;
  /** The host logger's level: lines below it are never made. */
  logLevel: string;
  /** Int32 slot 0: the task that called `process.exit()`, written just before the thread exits. */
  exitSlot: SharedArrayBuffer;
}
