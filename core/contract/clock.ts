/** A cancelable timer handle. */
export interface Timer {
  cancel(): void;
}

/**
 * Time as the engine sees it. Everything that waits (delays, retries, timeouts, cooldowns,
 * schedules) goes through a Clock, so tests swap in `createManualClock()` and run in milliseconds.
 */
export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): Timer;
}

// setTimeout overflows past 2^31-1 ms (~24.8 days); longer waits are chained.
const MAX_TIMEOUT = 2_147_483_647;

/**
 * A real timer: it fires once `ms` of real time has passed, counted on the monotonic clock as
 * setTimeout counts, so a wall clock stepped back (an NTP step) does not hold a length back by the
 * step (it re-checked Date.now() and waited the step out again). A wait due at a wall-clock time
 * is the caller's to check when it fires. A class with a static callback, so arming one allocates
 * no closures (hot path).
 */
class SystemTimer implements Timer {
  readonly #dueMono: number;
  readonly #fn: () => void;
  #handle: NodeJS.Timeout | undefined;

  constructor(ms: number, fn: () => void) {
    const wait = Math.max(ms, 0);
    this.#dueMono = performance.now() + wait;
    this.#fn = fn;
    this.#arm(wait);
  }

  #arm(wait: number): void {
    this.#handle = setTimeout(SystemTimer.#fire, Math.min(Math.max(Math.ceil(wait), 0), MAX_TIMEOUT), this);
  }

  static #fire(timer: SystemTimer): void {
    // Node's timer clock runs a little behind performance.now(): never fire early.
    const left = timer.#dueMono - performance.now();
    if (left > 0) timer.#arm(left);
    else timer.#fn();
  }

  cancel(): void {
    clearTimeout(this.#handle);
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => new SystemTimer(ms, fn),
};

/** A clock that only moves when told to; timers fire in due order during `advance()`. */
export interface ManualClock extends Clock {
  /** Moves time forward, firing due timers in order and letting their promise chains settle. */
  advance(ms: number): Promise<void>;
  /** Sets the time (forward only), firing due timers. */
  set(time: number | Date): Promise<void>;
  /** Number of pending timers. */
  pending(): number;
}

interface ManualTimer {
  due: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/**
 * Lets queued promise callbacks and immediate I/O completions run: `rounds` turns of the event
 * loop, each ended by an immediate (microtasks drain after each). One promise for all of them, not
 * one a turn: a manual clock settles after every timer it fires, and under a test runner's async
 * hooks (tap's async-hook-domain tracks every promise's destruction) a promise a turn made a
 * simulated day of once-a-second timers cost seconds.
 */
export function settle(rounds = 5): Promise<void> {
  return new Promise<void>((resolve) => {
    let left = rounds;
    const turn = (): void => {
      if (--left <= 0) resolve();
      else setImmediate(turn);
    };
    if (left <= 0) resolve();
    else setImmediate(turn);
  });
}

export function createManualClock(start: number | Date = Date.UTC(2026, 0, 1)): ManualClock {
  let now = typeof start === 'number' ? start : start.getTime();
  let seq = 0;
  let timers: ManualTimer[] = [];

  const takeDue = (limit: number): ManualTimer | undefined => {
    let best: ManualTimer | undefined;
    for (const t of timers) {
      if (!t.live || t.due > limit) continue;
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    if (best) {
      best.live = false;
      timers = timers.filter((t) => t.live);
    }
    return best;
  };

  const runUntil = async (target: number): Promise<void> => {
    await settle();
    for (;;) {
      const t = takeDue(target);
      if (!t) break;
      now = Math.max(now, t.due);
      t.fn();
      await settle();
    }
    now = Math.max(now, target);
    await settle();
  };

  return {
    now: () => now,
    setTimer(ms, fn) {
      const t: ManualTimer = { due: now + Math.max(0, ms), seq: seq++, fn, live: true };
      timers.push(t);
      return {
        cancel() {
          t.live = false;
        },
      };
    },
    advance: (ms) => runUntil(now + ms),
    set: (time) => runUntil(typeof time === 'number' ? time : time.getTime()),
    pending: () => timers.filter((t) => t.live).length,
  };
}

let lastIsoMs = NaN;
let lastIso = '';

/** `new Date(ms).toISOString()`, cached for the last millisecond: hot paths stamp many records per ms. */
export function isoTime(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIsoMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/**
 * Whether `work` settles (resolves or rejects) within `ms`; the timer is cleared either way, and a
 * rejection after the wait is swallowed. Every wait on Redis at shutdown is bounded with it (a
 * reply that never comes must not hold a stop), and a retry's wait that a stop ends early.
 */
export async function settlesWithin(clock: Clock, ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: Timer | undefined;
  const late = new Promise<false>((resolve) => (timer = clock.setTimer(Math.max(0, ms), () => resolve(false))));
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    timer?.cancel();
  }
}

/** Resolves once `signal` aborts (at once when it already has): a stop's bound to race work against. */
export function whenAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
