import type { ErrorCode } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { ThreadSpan } from '../contract/otel-thread.js';
import type { HandlerSource } from '../contract/plugin-source.js';
import { acceptThreadSpans } from '../contract/thread-spans.js';
import { markHeld, mayTakeBack, OVERFLOW_AFTER_MS, place, STALL_MS } from './placement.js';
import { type Batch, IN, OUT, OUT_FIELDS, OUT_HEADER, type ReadMethod, type ThreadData } from './protocol.js';
import { type DeathReason, deathCause, type PoolTask, Slot } from './slot.js';
import { threadForwarding, threadModules } from './thread-script.js';
import { startThread, type ThreadHooks } from './thread-start.js';
import { sendableBatch } from './unsendable.js';

/**
 * The pool of worker threads handlers run in. A thread runs many attempts at once (handlers
 * mostly wait on I/O); a new attempt goes to the thread with the fewest, skipping threads that
 * have stopped reading their messages (a handler spinning on the CPU). When every thread is held
 * so, one more starts (up to `max`), so quick runs do not wait behind long computations; a
 * thread beyond `size` ends once it has had no work for a while. Ops to and from threads are
 * batched per turn of the event loop.
 *
 * A thread that dies takes its attempts with it. The one that caused it fails: the attempt
 * whose grace ran out (`kill`), the one that called `process.exit()`, or the only attempt on a
 * thread that ran out of memory or crashed. The others were bystanders: each is started once
 * more on another thread (the same attempt; handlers run at least once, not exactly once), and
 * fails only if that thread dies too. A dead thread is replaced at once.
 */

/** Threads that die before they ever start (reach their message loop), in a row, after which the pool stops replacing them. */
const MAX_BOOT_FAILURES = 3;
/** A thread started beyond `size` (every thread was busy) ends after this long without work. */
const OVERFLOW_IDLE_MS = 10_000;

/** What the pool reports, from its threads. */
export interface PoolEvents {
  /** The handler settled: `code` null is a success with `text` its result's JSON (null: none); else `text` is the message. */
  done(task: PoolTask, code: string | null, text: string | null): void;
  /** The attempt's thread died and it cannot run again: it fails with `code`. */
  lost(task: PoolTask, code: ErrorCode, message: string): void;
  progress(task: PoolTask, fraction: number, text: string | undefined): void;
  /** A `ctx.log` call (no task: a line of the thread itself). */
  log(task: PoolTask | undefined, level: string, msg: string, fields: Record<string, unknown> | undefined): void;
  emit(task: PoolTask, event: string, payload: string | undefined): void;
  /** A `ctx.host` read: answer with `reply`. */
  read(task: PoolTask, request: number, method: ReadMethod, arg: unknown): void;
}

export interface PoolOptions {
  size: number;
  /** Threads at most: when every thread is held by a handler on the CPU, more start, up to this. */
  max: number;
  maxMemoryMb: number;
  /** Niceness of the threads (Linux). */
  nice: number;
  logger: Logger;
  /** URL of jobhost's `core/index` without extension (see `ThreadData.coreIndex`). */
  coreIndex: string;
  events: PoolEvents;
}

export class WorkerPool {
  readonly #o: PoolOptions;
  readonly #data: Omit<ThreadData, 'exitSlot' | 'claims'>;
  #slots: Slot[] = [];
  #dirty: Slot[] = [];
  #flushQueued = false;
  #closing = false;
  #spawned = 0;
  #bootFailures = 0;
  #nextRequest = 0;
  /** Memory reads in flight, by request id; a thread that dies answers its own with null. */
  readonly #memory = new Map<number, { slot: Slot; answer: (heapUsed: number | null) => void }>();
  /** Plugin versions by number: a run names its version with a small integer, not the source's key. */
  readonly #versions = new WeakMap<HandlerSource, number>();
  #nextVersion = 0;
  #placements = 0;
  readonly #idle = new Set<() => void>();
  readonly restarts: Record<DeathReason, number> = { grace: 0, exit: 0, memory: 0, crash: 0 };
  readonly #hooks: ThreadHooks = {
    receive: (slot, batch) => this.#receive(slot, batch),
    died: (slot, code) => this.#died(slot, code),
    post: (slot) => this.#post(slot),
  };
  /** Pings threads with runs in flight (see `STALL_MS`); runs while any has. */
  #heartbeat: NodeJS.Timeout | undefined;

  readonly #pingBusy = (): void => {
    let busy = false;
    const now = performance.now();
    for (const slot of [...this.#slots]) {
      if (slot.tasks.size === 0) continue;
      busy = true;
      if (slot.sent === slot.acked) this.#ping(slot);
      else if (slot.started && !slot.ending && slot.stalledFor(now) > OVERFLOW_AFTER_MS) this.#takeBack(slot, now);
    }
    if (!busy) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  };

  constructor(options: PoolOptions) {
    this.#o = options;
    this.#data = {
      coreIndex: options.coreIndex,
      ...threadModules(),
      logLevel: options.logger.level,
      nice: options.nice,
    };
  }

  /** Threads alive, and attempts in flight on them. */
  stats(): { size: number; threads: number; running: number; restarts: Record<DeathReason, number> } {
    let running = 0;
    for (const slot of this.#slots) running += slot.tasks.size;
    return { size: this.#o.size, threads: this.#slots.length, running, restarts: { ...this.restarts } };
  }

  /** Starts the threads (if not yet), so the first run does not wait for them. */
  warm(): void {
    if (this.#slots.length === 0 && !this.#closing) for (let i = 0; i < this.#o.size; i++) this.#spawn();
  }

  /** Starts an attempt on a thread. */
  run(task: PoolTask): void {
    if (this.#closing) return this.#o.events.lost(task, 'SHUTDOWN', 'the host is stopping: no new attempt starts in a worker thread');
    // Placed again (taken back from a held thread, or a bystander of one that died) after its
    // abort: its handler has no reason to start, and the abort went to the thread it left.
    if (task.abortedWith) return this.#o.events.lost(task, task.abortedWith.code as ErrorCode, task.abortedWith.message);
    const slot = this.#pick();
    const source = task.source;
    let version = this.#versions.get(source);
    if (version === undefined) this.#versions.set(source, (version = ++this.#nextVersion));
    if (slot.loaded.get(source.entry) !== version) {
      slot.loaded.set(source.entry, version);
      slot.out.push(IN.load, version, source);
    }
    slot.tasks.set(task.id, task);
    task.slot = slot;
    slot.place(task, ++this.#placements);
    if (slot.tasks.size === 1) {
      clearTimeout(slot.idleTimer);
      slot.worker?.ref();
      this.#heartbeat ??= setInterval(this.#pingBusy, STALL_MS / 2).unref();
    }
    slot.out.push(
      IN.run,
      task.id,
      version,
      task.job,
      task.runId,
      task.attempt,
      task.params,
      task.limits.maxResultBytes,
      task.limits.maxEventBytes,
      task.traceparent,
      task.cell,
      task.placement,
    );
    this.#ping(slot);
  }

  /**
   * `slot` has not answered for a second (a handler holds its CPU): the attempts placed there
   * whose handler has not started go to another thread (see `CLAIM`, and `mayTakeBack` for where).
   */
  #takeBack(slot: Slot, now: number): void {
    if (!mayTakeBack(this.#slots, slot, now, this.#o.max)) return;
    const back = [...slot.tasks.values()].filter((task) => slot.revoke(task));
    if (back.length === 0) return;
    for (const task of back) this.#leave(slot, task);
    this.#o.logger.debug(
      { worker: slot.n, runs: back.map((t) => t.runId) },
      `worker thread ${slot.n} is held by a handler: its runs not started yet go to another`,
    );
    for (const task of back) this.run(task);
  }

  /** Aborts the attempt's signal in its thread. */
  abort(task: PoolTask, code: string, message: string): void {
    task.abortedWith ??= { code, message };
    if (task.slot) this.#queue(task.slot, IN.abort, task.id, code, message);
  }

  /** The attempt did not let go within its grace: its thread is terminated (and replaced). */
  kill(task: PoolTask): void {
    const slot = task.slot;
    if (!slot || slot.killedFor || slot.dead) return;
    slot.killedFor = task;
    if (slot.worker) void slot.worker.terminate();
    else this.#died(slot, 1);
  }

  /** Answers a `ctx.host` read. */
  reply(task: PoolTask, request: number, ok: boolean, value: unknown): void {
    if (task.slot) this.#queue(task.slot, IN.reply, request, ok, value);
  }

  /** The heap in use of each live thread, in bytes (for benchmarks); a thread that dies meanwhile is left out. */
  async memory(): Promise<number[]> {
    const answers = this.#slots
      .filter((s) => s.worker && !s.dead)
      .map((slot) => {
        const id = ++this.#nextRequest;
        const answer = new Promise<number | null>((resolve) => this.#memory.set(id, { slot, answer: resolve }));
        this.#queue(slot, IN.memory, id);
        return answer;
      });
    return (await Promise.all(answers)).filter((n) => n !== null);
  }

  /**
   * Lets attempts in flight settle for up to `graceMs` (they have been aborted by then), then
   * terminates every thread. Attempts still on a thread are lost with `SHUTDOWN`.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#slots.some((s) => s.tasks.size > 0)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, graceMs);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#idle.add(done);
      });
      this.#idle.clear();
    }
    clearInterval(this.#heartbeat);
    const slots = [...this.#slots];
    await Promise.all(slots.map((s) => s.worker?.terminate()));
    for (const slot of slots) this.#died(slot, 0);
  }

  // ----------------------------------------------------------------------------- threads

  #spawn(): Slot {
    const slot = new Slot(++this.#spawned);
    this.#slots.push(slot);
    // Whether the thread hands its spans to an SDK set up in code is decided as it starts: an SDK
    // started after the host (or after this pool) is found by the threads started from then on.
    const otelForward = this.#data.otel === undefined ? threadForwarding() : undefined;
    startThread(slot, { ...this.#data, otelForward, exitSlot: slot.exitSlot, claims: slot.claims }, this.#o.maxMemoryMb, this.#hooks);
    return slot;
  }

  /** The thread for a new attempt: the least busy of those still reading their messages (`placement.ts`). */
  #pick(): Slot {
    this.warm();
    const { best, allHeld } = place(this.#slots, performance.now());
    // Every thread is held by a handler on the CPU: one more, so other runs need not wait for them.
    if (!best || (allHeld && this.#slots.length < this.#o.max)) return this.#spawn();
    return best;
  }

  /** Threads that will go on (not ending). */
  #staying(): number {
    let n = 0;
    for (const slot of this.#slots) if (!slot.ending) n++;
    return n;
  }

  /** A thread beyond `size` that has run out of work ends after a while. */
  #retireWhenIdle(slot: Slot): void {
    if (this.#staying() <= this.#o.size || this.#closing) return;
    clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      // Counted again: others may have retired meanwhile, and the pool keeps `size` threads.
      if (slot.tasks.size > 0 || slot.dead || slot.retired || this.#staying() <= this.#o.size) return;
      slot.retired = true;
      void slot.worker?.terminate();
    }, OVERFLOW_IDLE_MS);
    slot.idleTimer.unref();
  }

  #died(slot: Slot, exitCode: number): void {
    if (slot.dead) return;
    slot.dead = true;
    clearTimeout(slot.idleTimer);
    for (const [id, read] of this.#memory) {
      if (read.slot !== slot) continue;
      this.#memory.delete(id);
      read.answer(null);
    }
    this.#slots = this.#slots.filter((s) => s !== slot);
    if (slot.retired && slot.tasks.size === 0) return;
    // It never reached its message loop: its start failed (not a handler that ended it at once).
    if (!slot.started && !slot.killedFor && !this.#closing) this.#bootFailures++;
    const tasks = [...slot.tasks.values()];
    slot.tasks.clear();
    const { reason, code, message, culprit } = deathCause(slot, exitCode, tasks, this.#o.maxMemoryMb);
    if (!this.#closing) {
      this.restarts[reason]++;
      this.#o.logger.warn({ worker: slot.n, reason, runs: tasks.map((t) => t.runId), exitCode }, `worker thread ${slot.n} ended (${message}); replacing it`);
    }
    const again: PoolTask[] = [];
    for (const task of tasks) {
      task.slot = undefined;
      // A run its thread never started (its claim still `placed`: nothing races for it now) did
      // not share the death: placed again, it is not counted as moved.
      const unstarted = slot.revoke(task);
      if (task === culprit) this.#o.events.lost(task, code, message);
      else if (this.#closing) this.#o.events.lost(task, 'SHUTDOWN', 'the host stopped while the attempt was running in a worker thread');
      else if (unstarted) again.push(task);
      else if (task.moved) this.#o.events.lost(task, code, `${message}, while the run shared it`);
      else {
        task.moved = true;
        again.push(task);
      }
    }
    if (this.#closing) return this.#checkIdle();
    if (this.#bootFailures >= MAX_BOOT_FAILURES) {
      this.#o.logger.error({ err: slot.error }, 'worker threads fail to start; handlers with isolation "worker" fail until one starts');
    } else if (this.#slots.length < this.#o.size) {
      this.#spawn();
    }
    for (const task of again) this.run(task);
  }

  // ----------------------------------------------------------------------------- messages

  #queue(slot: Slot, ...op: unknown[]): void {
    for (const field of op) slot.out.push(field);
    this.#ping(slot);
  }

  /** Marks the thread for the flush at the end of this event-loop turn (one message per turn, not per I/O callback); with no op queued, it asks for an answer. */
  #ping(slot: Slot): void {
    if (slot.queued) return;
    slot.queued = true;
    this.#dirty.push(slot);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const slot of dirty) {
      slot.queued = false;
      if (slot.worker && !slot.dead) this.#post(slot);
    }
  };

  #post(slot: Slot): void {
    const batch = slot.out;
    slot.out = [0, 0];
    batch[0] = ++slot.sent;
    const now = performance.now();
    batch[1] = performance.timeOrigin + now;
    slot.sentAt.set(slot.sent, now);
    try {
      slot.worker!.postMessage(batch);
    } catch (err) {
      // A value the structured clone refuses (a function in a run's params, from an app event or
      // a schema's transform) would throw out of the flush and end the process.
      const sendable = sendableBatch(batch, (op) => {
        const task = op[0] === IN.run ? slot.tasks.get(op[1] as number) : undefined;
        if (task) {
          this.#leave(slot, task);
          const why = (err as Error).message.split('\n')[0]!.slice(0, 200);
          this.#o.events.lost(
            task,
            'PARAMS_NOT_TRANSFERABLE',
            `the params cannot be sent to a worker thread (${why}); pass plain JSON data, or run the job inline`,
          );
        } else if (op[0] !== IN.run && op[0] !== IN.reply) {
          this.#o.logger.error({ err, op: op[0] }, 'a message to a worker thread could not be sent; dropped');
        }
      });
      slot.worker!.postMessage(sendable);
    }
  }

  #receive(slot: Slot, batch: Batch): void {
    const acked = batch[0] as number;
    if (!slot.started) {
      // Its first batch says the thread has started: what was posted to it before waits from now.
      slot.started = true;
      this.#bootFailures = 0;
      const now = performance.now();
      for (const seq of slot.sentAt.keys()) slot.sentAt.set(seq, now);
    }
    if (acked > slot.acked) markHeld(slot, batch[1] as number);
    for (let s = slot.acked + 1; s <= acked; s++) slot.sentAt.delete(s);
    slot.acked = acked;
    const events = this.#o.events;
    for (let i = OUT_HEADER; i < batch.length; i += 1 + OUT_FIELDS[batch[i] as 0]) {
      const a = batch[i + 1] as number;
      switch (batch[i]) {
        case OUT.done: {
          const task = slot.tasks.get(a);
          if (!task) break;
          this.#leave(slot, task);
          events.done(task, batch[i + 2] as string | null, batch[i + 3] as string | null);
          break;
        }
        case OUT.progress: {
          const task = slot.tasks.get(a);
          if (task) events.progress(task, batch[i + 2] as number, batch[i + 3] as string | undefined);
          break;
        }
        case OUT.log:
          events.log(slot.tasks.get(a), batch[i + 2] as string, batch[i + 3] as string, batch[i + 4] as Record<string, unknown> | undefined);
          break;
        case OUT.emit: {
          const task = slot.tasks.get(a);
          if (task) events.emit(task, batch[i + 2] as string, batch[i + 3] as string | undefined);
          break;
        }
        case OUT.read: {
          const task = slot.tasks.get(batch[i + 2] as number);
          if (task) events.read(task, a, batch[i + 3] as ReadMethod, batch[i + 4]);
          break;
        }
        case OUT.memory:
          this.#memory.get(a)?.answer(batch[i + 2] as number);
          this.#memory.delete(a);
          break;
        case OUT.span:
          acceptThreadSpans([batch[i + 1] as ThreadSpan], (msg) => this.#o.logger.warn(msg));
          break;
      }
    }
  }

  /** `task` leaves `slot` (ended, lost, taken back): a thread with no work left lets the process go, and may retire. */
  #leave(slot: Slot, task: PoolTask): void {
    slot.tasks.delete(task.id);
    slot.freeCell(task);
    task.slot = undefined;
    if (slot.tasks.size > 0) return;
    slot.worker?.unref();
    if (this.#closing) this.#checkIdle();
    else this.#retireWhenIdle(slot);
  }

  #checkIdle(): void {
    if (this.#slots.some((s) => s.tasks.size > 0)) return;
    for (const done of this.#idle) done();
  }
}
