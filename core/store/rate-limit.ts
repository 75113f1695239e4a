import type { Clock, Timer } from '../contract/clock.js';
import type { RateLimit } from '../contract/plugin-schema.js';

/** A waiting run as the dispatcher holds it (its `Waiting`): the dispatcher parks it when `admit` says no. */
interface Limited {
  readonly run: { readonly job: string };
  readonly state: string;
}

/**
 * `rateLimit` on the local backend (SPEC §13), counted the way BullMQ's limiter counts: the
 * first start after the last window closed opens a window of `perMs`; within it at most `max`
 * attempts start; the others are held (parked) and go back to the front of their queues when the
 * window closes, on the injected clock. Only jobs with a limit ever reach this.
 */

interface Window<E> {
  count: number;
  /** When its first start opened it: it closes `perMs` of the limit in force later (an edit of `per` moves it). */
  openedAt: number;
  closesAt: number;
  held: E[];
  timer: Timer | undefined;
}

export class RateWindows<E extends Limited> {
  readonly #clock: Clock;
  readonly #release: (held: E[]) => void;
  readonly #windows = new Map<string, Window<E>>();
  #halted = false;

  /** `release` gets the held runs (still parked, oldest first) when their window closes. */
  constructor(clock: Clock, release: (held: E[]) => void) {
    this.#clock = clock;
    this.#release = release;
  }

  /** Counts a start of `entry` and answers true, or holds it (the caller parks it) until the window closes and answers false. */
  admit(entry: E, limit: RateLimit): boolean {
    const job = entry.run.job;
    const now = this.#clock.now();
    let w = this.#windows.get(job);
    if (!w) this.#windows.set(job, (w = { count: 0, openedAt: 0, closesAt: 0, held: [], timer: undefined }));
    // An open window closes `per` (as the limit says now) after it opened: an edit of `per` moves it; a closed one stays closed.
    if (w.count > 0 && now < w.closesAt) w.closesAt = w.openedAt + limit.perMs;
    if (now >= w.closesAt) w.count = 0;
    if (w.count < limit.max) {
      if (w.count === 0) {
        w.openedAt = now;
        w.closesAt = now + limit.perMs;
      }
      w.count++;
      return true;
    }
    w.held.push(entry);
    this.#arm(job, w);
    return false;
  }

  /** Runs of `job` held by its limit now (canceled ones left out). */
  held(job: string): number {
    let n = 0;
    for (const e of this.#windows.get(job)?.held ?? []) if (e.state === 'parked') n++;
    return n;
  }

  /** Hands back the held runs of `job` now (its limit changed: the next pick checks the new one). */
  releaseJob(job: string): void {
    const w = this.#windows.get(job);
    if (!w || w.held.length === 0) return;
    w.timer?.cancel();
    w.timer = undefined;
    this.#handBack(w);
  }

  /** No timer left (a halt); `resume()` arms them again. */
  halt(): void {
    this.#halted = true;
    for (const w of this.#windows.values()) {
      w.timer?.cancel();
      w.timer = undefined;
    }
  }

  resume(): void {
    this.#halted = false;
    for (const [job, w] of this.#windows) if (w.held.length > 0) this.#arm(job, w);
  }

  #arm(job: string, w: Window<E>): void {
    if (w.timer || this.#halted) return;
    w.timer = this.#clock.setTimer(Math.max(0, w.closesAt - this.#clock.now()), () => {
      w.timer = undefined;
      this.#handBack(w);
      if (w.held.length === 0 && this.#clock.now() >= w.closesAt) this.#windows.delete(job);
    });
  }

  #handBack(w: Window<E>): void {
    const held = w.held.filter((e) => e.state === 'parked');
    w.held = [];
    if (held.length > 0) this.#release(held);
  }
}
