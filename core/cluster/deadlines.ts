import type { Clock, Timer } from '../contract/clock.js';

/**
 * Deadlines of many keys (running attempts) on one timer, armed for the earliest, not a timer per
 * key. A key whose deadline passes is handed to `due`; it stays until `delete`d.
 */
export class Deadlines<K> {
  readonly #clock: Clock;
  readonly #due: (key: K) => void;
  readonly #at = new Map<K, number>();
  #timer: Timer | undefined;
  #next = Infinity;

  constructor(clock: Clock, due: (key: K) => void) {
    this.#clock = clock;
    this.#due = due;
  }

  set(key: K, at: number): void {
    this.#at.set(key, at);
    if (at < this.#next) this.#arm(at);
  }

  delete(key: K): void {
    this.#at.delete(key);
  }

  /** Stops the timer (the host is closing). */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#next = Infinity;
  }

  #arm(at: number): void {
    this.#timer?.cancel();
    this.#next = at;
    this.#timer = this.#clock.setTimer(Math.max(0, at - this.#clock.now()), () => {
      this.#timer = undefined;
      this.#next = Infinity;
      const now = this.#clock.now();
      let next = Infinity;
      for (const [key, due] of this.#at) {
        if (due <= now) this.#due(key);
        else if (due < next) next = due;
      }
      if (next < Infinity) this.#arm(next);
    });
  }
}
