import type { Worker } from 'node:worker_threads';
import type { ErrorCode } from '../contract/errors.js';
import type { HandlerLimits } from '../contract/limits.js';
import type { HandlerSource } from '../contract/plugin-source.js';
import { type Batch, CLAIM, CLAIM_CELLS, claimTag } from './protocol.js';

/** The pool's bookkeeping: an attempt in it, a thread and what is in flight on it, why a thread died. */

/** One attempt in the pool (the executor's attempt extends it). */
export class PoolTask {
  readonly id: number;
  readonly source: HandlerSource;
  readonly job: string;
  readonly runId: string;
  readonly attempt: number;
  readonly params: unknown;
  /** What its result and emitted payloads may weigh, checked in the thread where they become JSON. */
  readonly limits: HandlerLimits;
  /** The thread it is on, while it runs. */
  slot: Slot | undefined;
  /** Already started again after its thread died under it. */
  moved = false;
  /** Its claim cell on its thread (`CLAIM`), -1: none, and the placement its tag is made of. */
  cell = -1;
  placement = 0;
  /** Its signal was aborted (cancel, timeout, stop): a placement after that starts no handler. */
  abortedWith: { code: string; message: string } | undefined;
  /** The attempt's span, when something traces: the handler runs inside it in its thread. */
  traceparent: string | undefined;

  constructor(id: number, source: HandlerSource, job: string, runId: string, attempt: number, params: unknown, limits: HandlerLimits) {
    this.id = id;
    this.source = source;
    this.job = job;
    this.runId = runId;
    this.attempt = attempt;
    this.params = params;
    this.limits = limits;
  }
}

export type DeathReason = 'grace' | 'exit' | 'memory' | 'crash';

/** A thread of the pool and what is in flight on it. */
export class Slot {
  readonly n: number;
  worker: Worker | undefined;
  readonly tasks = new Map<number, PoolTask>();
  /** The newest plugin version sent to the thread, per plugin file. */
  readonly loaded = new Map<string, number>();
  out: Batch = [0, 0];
  queued = false;
  sent = 0;
  acked = 0;
  /** When each batch not yet read was posted (`performance.now()`; from the thread's start for those posted before). */
  readonly sentAt = new Map<number, number>();
  /** Its thread has started: it reached its message loop (its first, empty batch came). */
  started = false;
  /** When it last read its messages after what runs on it had held it on the CPU for long (`performance.now()`). */
  heldAt = Number.NEGATIVE_INFINITY;
  killedFor: PoolTask | undefined;
  error: (Error & { code?: string }) | undefined;
  dead = false;
  /** Ended for want of work (a thread beyond `size`): not a death. */
  retired = false;
  idleTimer: NodeJS.Timeout | undefined;
  readonly exitSlot = new SharedArrayBuffer(4);
  readonly claims = new SharedArrayBuffer(4 * CLAIM_CELLS);
  readonly claimCells = new Int32Array(this.claims);
  #freeCells: number[] | undefined;

  constructor(n: number) {
    this.n = n;
  }

  /** It is ending: dead, retired, or being terminated for a handler that would not let go. */
  get ending(): boolean {
    return this.killedFor !== undefined || this.dead || this.retired;
  }

  /** `task` is placed here as `placement`: a free claim cell holds its claim (none when all are taken: it cannot be taken back). */
  place(task: PoolTask, placement: number): void {
    this.#freeCells ??= Array.from({ length: CLAIM_CELLS }, (_, i) => CLAIM_CELLS - 1 - i);
    task.placement = placement;
    task.cell = this.#freeCells.pop() ?? -1;
    if (task.cell >= 0) Atomics.store(this.claimCells, task.cell, claimTag(placement) + CLAIM.placed);
  }

  /**
   * Takes `task` back if its handler has not started here (its claim still `placed`): true when
   * it never will (see `CLAIM`), false when it has started or has no cell.
   */
  revoke(task: PoolTask): boolean {
    if (task.cell < 0) return false;
    const placed = claimTag(task.placement) + CLAIM.placed;
    return Atomics.compareExchange(this.claimCells, task.cell, placed, placed - CLAIM.placed + CLAIM.revoked) === placed;
  }

  /** The attempt in `task`'s cell has left this thread (ended, lost or taken back). */
  freeCell(task: PoolTask): void {
    if (task.cell >= 0) this.#freeCells?.push(task.cell);
    task.cell = -1;
  }

  /** How long the oldest batch it has not read has waited (0: it has read everything). */
  stalledFor(now: number): number {
    return this.sent > this.acked ? now - (this.sentAt.get(this.acked + 1) ?? now) : 0;
  }
}

/** Why a thread died, the code its attempts fail with, and which attempt caused it (if one did). */
export function deathCause(
  slot: Slot,
  exitCode: number,
  tasks: PoolTask[],
  maxMemoryMb: number,
): { reason: DeathReason; code: ErrorCode; message: string; culprit: PoolTask | undefined } {
  const only = tasks.length === 1 ? tasks[0] : undefined;
  if (slot.killedFor) {
    return {
      reason: 'grace',
      code: 'WORKER_EXITED',
      message: `run ${slot.killedFor.runId} did not let go within its grace after its abort`,
      culprit: slot.killedFor,
    };
  }
  if (slot.error?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return {
      reason: 'memory',
      code: 'OUT_OF_MEMORY',
      message: `the worker thread ran out of memory (workers.maxMemoryMb: ${maxMemoryMb})`,
      culprit: only,
    };
  }
  const exitedBy = Atomics.load(new Int32Array(slot.exitSlot), 0);
  if (exitedBy !== 0) {
    const culprit = tasks.find((t) => t.id === exitedBy);
    return { reason: 'exit', code: 'WORKER_EXITED', message: `the handler${culprit ? '' : ' of a finished run'} called process.exit(${exitCode})`, culprit };
  }
  const why = slot.error ? `the worker thread crashed: ${slot.error.message}` : `the worker thread stopped (exit code ${exitCode})`;
  return { reason: 'crash', code: 'WORKER_EXITED', message: why, culprit: only };
}
