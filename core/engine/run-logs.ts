import type { AttemptTask } from '../contract/attempt.js';
import type { Backend } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import type { EventDataMap } from '../contract/events.js';
import type { Logger } from '../contract/logger.js';
import { type LogLevel, LogTail } from '../contract/run-log.js';
import type { Bus } from './bus.js';

/**
 * The engine's side of run logs. Every line a handler writes through `ctx.log` comes in through
 * `line()` (the inline executor calls it; a worker-thread executor posts its lines to the same
 * call), is numbered within its attempt, and waits here briefly: every ~50 ms the lines of each
 * run go in one batch to the backend (`appendLogs`, kept with the run) and to the bus as one
 * `run.log` event. A run's lines are flushed before each of its state changes is reported, so a
 * listener sees a run's lines before its outcome. Between flushes a run holds at most what its
 * log keeps (the last 500 lines / 256 KiB): a handler that logs in a tight loop costs bounded
 * memory and at most ~20 events a second.
 */

/** How long lines wait to be sent together (real time: this paces I/O, it is not run logic). */
const FLUSH_MS = 50;

export interface RunLogsOptions {
  bus: Bus;
  clock: Clock;
  logger: Logger;
  backend(): Backend;
}

interface Pending {
  job: string;
  /** The run's trace, carried by its `run.log` events as by its other events (SPEC §15). */
  traceId: string | undefined;
  tail: LogTail;
}

export class RunLogs {
  readonly #o: RunLogsOptions;
  /** The attempt each running run is on and its next line number. */
  readonly #counters = new Map<string, { attempt: number; next: number }>();
  readonly #pending = new Map<string, Pending>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: RunLogsOptions) {
    this.#o = options;
  }

  /**
   * A line `ctx.log` wrote during attempt `task.attempt` of `task.run`. The one entry point for
   * executors: call it only while the attempt is live (not after it settled or was aborted).
   */
  line(task: AttemptTask, level: LogLevel, msg: string, fields: Record<string, unknown> | undefined): void {
    if (this.#closed) return;
    const runId = task.run.id;
    let counter = this.#counters.get(runId);
    if (!counter || counter.attempt !== task.attempt) this.#counters.set(runId, (counter = { attempt: task.attempt, next: 1 }));
    const line = { attempt: task.attempt, i: counter.next++, at: isoTime(this.#o.clock.now()), level, msg, ...(fields && { fields }) };
    let pending = this.#pending.get(runId);
    if (!pending) this.#pending.set(runId, (pending = { job: task.run.job, traceId: task.run.traceId ?? undefined, tail: new LogTail() }));
    pending.tail.add([line]);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, FLUSH_MS);
  }

  /** Sends the waiting lines of one run (or of every run) to the backend and the bus. */
  flush(runId?: string): void {
    if (runId === undefined) {
      for (const id of [...this.#pending.keys()]) this.#send(id);
      return;
    }
    this.#send(runId);
  }

  #send(runId: string): void {
    const pending = this.#pending.get(runId);
    if (!pending) return;
    this.#pending.delete(runId);
    const log = pending.tail.toJSON();
    try {
      this.#o.backend().appendLogs(runId, log);
    } catch (err) {
      this.#o.logger.error({ err, runId }, 'could not keep log lines of a run');
    }
    const data: EventDataMap['run.log'] = { job: pending.job, runId, lines: log.lines, dropped: log.dropped };
    if (pending.traceId !== undefined) data.traceId = pending.traceId;
    this.#o.bus.emitLog(data);
  }

  /** The run's attempt ended (it waits again or finished): its lines go out now, before its state change is told. */
  ended(runId: string, final: boolean): void {
    this.#send(runId);
    if (final) this.#counters.delete(runId);
  }

  /** Sends what waits and stops taking lines (the host stops). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#closed = true;
    this.#counters.clear();
  }
}
