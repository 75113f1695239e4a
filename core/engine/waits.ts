import type { Backend } from '../contract/backend.js';
import type { Clock, Timer } from '../contract/clock.js';
import { parseDuration } from '../contract/duration.js';
import { HostError } from '../contract/errors.js';
import type { AnyHostEvent } from '../contract/events.js';
import { isFinal, type Run } from '../contract/run.js';
import type { Bus } from './bus.js';

/** `host.wait(id, options)`. */
export interface WaitOptions {
  /** Give up after this long (ms, on the host's clock): rejects with WAIT_TIMEOUT; the run goes on. */
  timeout?: number | undefined;
  /** Give up when it aborts: rejects with its reason; the run goes on. */
  signal?: AbortSignal | undefined;
}

interface Waiter {
  resolve(run: Run): void;
  reject(err: unknown): void;
}

const FINAL_EVENTS: ReadonlySet<string> = new Set(['run.succeeded', 'run.failed', 'run.canceled']);

/**
 * Everyone waiting for a run to end (`host.wait`): one bus listener for all of them, the waiters
 * kept by run id, so an event costs one lookup however many wait. Every wait settles: with the
 * final run, WAIT_TIMEOUT, the signal's reason, or SHUTTING_DOWN once the host has drained (a run
 * not over by then will not end in this process).
 */
export class RunWaits {
  readonly #bus: Bus;
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #waiters = new Map<string, Set<Waiter>>();
  #off: (() => void) | undefined;
  #closed = false;

  constructor(options: { bus: Bus; backend: Backend; clock: Clock }) {
    this.#bus = options.bus;
    this.#backend = options.backend;
    this.#clock = options.clock;
  }

  /** How many waits are pending (tests; one listener serves them all). */
  get size(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  /** Resolves with the run once it is final; RUN_NOT_FOUND for an unknown id. */
  wait(id: string, options: WaitOptions = {}): Promise<Run> {
    const { signal } = options;
    let timeout: number | undefined;
    try {
      timeout = options.timeout === undefined ? undefined : parseDuration(options.timeout, 'timeout');
      if (signal !== undefined && typeof (signal as Partial<AbortSignal> | null)?.addEventListener !== 'function') {
        throw new HostError('INVALID_BODY', 'signal: expected an AbortSignal');
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Run>((resolve, reject) => {
      let timer: Timer | undefined;
      const onAbort = (): void => done(() => reject(signal!.reason));
      const done = (settle: () => void): void => {
        const set = this.#waiters.get(id);
        if (!set?.delete(waiter)) return; // settled already
        if (set.size === 0) this.#waiters.delete(id);
        if (this.#waiters.size === 0) this.#unlisten();
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
        settle();
      };
      const waiter: Waiter = { resolve: (run) => done(() => resolve(run)), reject: (err) => done(() => reject(err)) };
      // Listen first, then look: a run that ends while the lookup is in flight is not missed.
      this.#add(id, waiter);
      if (timeout !== undefined) {
        timer = this.#clock.setTimer(timeout, () =>
          waiter.reject(new HostError('WAIT_TIMEOUT', `run ${id} did not end within ${timeout} ms; it goes on`, { runId: id, timeoutMs: timeout })),
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#backend.getRun(id).then(
        (run) => {
          if (!run) waiter.reject(new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id }));
          else if (isFinal(run.status)) waiter.resolve(run);
          else if (this.#closed) waiter.reject(shuttingDown(id));
        },
        (err: unknown) => waiter.reject(err),
      );
    });
  }

  /** After the drain: every pending wait rejects with SHUTTING_DOWN, and so does any later wait for a run that is not over. */
  close(): void {
    this.#closed = true;
    for (const [id, set] of [...this.#waiters]) for (const waiter of [...set]) waiter.reject(shuttingDown(id));
  }

  #add(id: string, waiter: Waiter): void {
    let set = this.#waiters.get(id);
    if (!set) this.#waiters.set(id, (set = new Set()));
    set.add(waiter);
    this.#off ??= this.#bus.on('*', (e) => this.#onEvent(e));
  }

  #onEvent(e: AnyHostEvent): void {
    if (!FINAL_EVENTS.has(e.type) || !('runId' in e.data)) return;
    const id = e.data.runId;
    const set = this.#waiters.get(id);
    if (!set) return;
    const waiters = [...set];
    this.#backend.getRun(id).then(
      (run) => {
        for (const w of waiters) run ? w.resolve(run) : w.reject(new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id }));
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }

  #unlisten(): void {
    this.#off?.();
    this.#off = undefined;
  }
}

function shuttingDown(id: string): HostError {
  return new HostError('SHUTTING_DOWN', `the host stopped before run ${id} ended; it goes on at the next start`, { runId: id });
}
