/**
 * What the main thread and a worker thread say to each other. Every message is one batch: what
 * one side produced in one turn of its event loop, so a thousand runs cost one `postMessage`
 * each way, not a thousand. A batch is one flat array, an op code followed by its fields, op
 * after op (no array per op: cloning and collecting them cost more than the runs themselves).
 * What a handler hands back (its result, log lines, emitted payloads) crosses as JSON text,
 * made once in the worker, which is also the check that it survives JSON.
 *
 * A batch to a worker starts with its sequence number and when it was posted; every batch from a
 * worker starts with the last sequence number it has read and when it read it (both times
 * `performance.timeOrigin + now()`, ms: the threads' clocks share an origin in wall time), so the
 * pool sees a worker that has stopped reading (a handler spinning on the CPU), and how long it
 * was held, and sends new runs elsewhere. A worker's first batch, sent once it has started and
 * before it reads any, is `[0, 0]`.
 */

/**
 * Ops to a worker thread, and their fields:
 * - `load` version, source: a plugin version (numbered by the pool), evaluated on its first run
 *   in the thread, dropped once superseded and idle;
 * - `run` task, version, job, runId, attempt, params, maxResultBytes, maxEventBytes (the
 *   limits the thread checks the result and emitted payloads against, as it makes their JSON),
 *   traceparent (the attempt's span; undefined: nothing traces), cell (the attempt's claim cell
 *   in `ThreadData.claims`, -1: none; see `CLAIM`), placement (what the cell's tag is made of);
 * - `abort` task, code, message: the attempt's signal is aborted with a HostError of that code;
 * - `reply` request, ok, value: the answer to a `ctx.host` read (`ok` false: an error message);
 * - `memory` request: the thread's heap in use.
 */
export const IN = { load: 0, run: 1, abort: 2, reply: 3, memory: 4 } as const;

/** How many fields follow each op to a worker. */
export const IN_FIELDS = [2, 11, 3, 3, 1] as const;

/**
 * An attempt placed on a thread can be taken back until the thread starts its handler: a handler
 * on the CPU holds every attempt placed on its thread behind it, and the pool sees that only once
 * the thread stops answering (`STALL_MS`), after it may have placed more there. Each placed
 * attempt has a cell of the thread's `claims` holding `claimTag(task) + placed`; the thread swaps
 * it for `claimed` just before it runs the handler, the pool for `revoked` when it moves the
 * attempt to another thread. One compare-and-swap each, so exactly one of them wins. The tag (a
 * number per placement, not the attempt's id: a run taken back may come back to the same thread)
 * keeps a cell the pool has reused from being claimed for the placement it held before.
 */
export const CLAIM = { placed: 1, claimed: 2, revoked: 3 } as const;
/** Claim cells a thread has: attempts placed beyond this many at once cannot be taken back. */
export const CLAIM_CELLS = 4096;
export const claimTag = (placement: number): number => (placement % 0x1fffffff) * 4;

/**
 * Ops from a worker thread, and their fields:
 * - `done` task, code, text: the handler settled; `code` null is a success with `text` its
 *   result's JSON (null: none), else `text` is the error message;
 * - `progress` task, fraction, text (undefined: unchanged);
 * - `log` task, level, msg, fields: a `ctx.log` call at any level, as `logArgs()` makes it
 *   (task 0: the thread itself); the main thread keeps it with the run and writes it to its log;
 * - `emit` task, event, payload (JSON text, or undefined);
 * - `read` request, task, method, arg: a `ctx.host` read;
 * - `memory` request, heapUsed;
 * - `span` span: a span the handler made, ended, for the application's SDK (`ThreadSpan`; only
 *   when the thread forwards its spans, see `ThreadData.otelForward`).
 */
export const OUT = { done: 0, progress: 1, log: 2, emit: 3, read: 4, memory: 5, span: 6 } as const;

/** How many fields follow each op from a worker. */
export const OUT_FIELDS = [3, 3, 4, 3, 4, 2, 1] as const;

/** Where the ops of a batch to a worker begin: after its sequence number and the time it was posted. */
export const IN_HEADER = 2;

/** Where the ops of a batch from a worker begin: after the last sequence number read and its time. */
export const OUT_HEADER = 2;

export type ReadMethod = 'runs' | 'run' | 'stats';

/** A batch either way: its sequence number and when it was posted (to a worker), or the last one read and when (from one); then ops. */
export type Batch = unknown[];

/** What a worker thread is started with. */
export interface ThreadData {
  /** The URL of jobhost's own `core/index` without its extension: a plugin's import of it gets `plugin-api.ts` in a worker. */
  coreIndex: string;
  /** pino, for the shape of `ctx.log` (its calls travel to the main thread, which writes them). */
  pinoUrl: string;
  /** The tracer's modules, when `OTEL_*` asks for tracing (`threadOtelModules`). */
  otel: import('../contract/otel-thread.js').ThreadOtelModules | undefined;
  /**
   * Without `otel`, while the application has set up an SDK in code: the modules the thread makes
   * its handler's spans with, sent back as `span` ops for that SDK (`startThreadForwarding`).
   */
  otelForward?: import('../contract/otel-thread.js').ForwardModules | undefined;
  /** tsx's API, registered in the thread the first time a plugin imports a TypeScript module from outside the plugins directory. */
  tsxUrl: string | null;
  /** The host logger's level, as `ctx.log.level` reads it (every call is still sent: the run keeps lines at any level). */
  logLevel: string;
  /** Niceness the thread gives itself (Linux; 0: as the process). */
  nice: number;
  /** Int32 slot 0: the task that called `process.exit()`, written just before the thread exits. */
  exitSlot: SharedArrayBuffer;
  /** `CLAIM_CELLS` Int32 cells: the claims of the attempts placed on this thread (see `CLAIM`). */
  claims: SharedArrayBuffer;
}
