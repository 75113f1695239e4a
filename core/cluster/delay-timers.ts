import type { Clock, Timer } from '../contract/clock.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Wakes a job's dispatcher when its earliest delayed run is due: BullMQ moves a due run only when
 * some worker asks, and the hand-driven workers ask only when woken. One timer per job, armed for
 * the earliest due time known (from a `delayed` event or BullMQ's delayed set).
 */
export class DelayTimers {
  readonly #timers = new Map<string, { at: number; timer: Timer }>();
  readonly #clock: Clock;
  readonly #redis: ScriptedRedis;
  /** The job's BullMQ delayed set, or undefined when the job is not loaded here (nothing to wake). */
  readonly #delayedKey: (name: string) => string | undefined;
  readonly #wake: (name: string) => void;
  #stopped = false;

  constructor(clock: Clock, redis: ScriptedRedis, delayedKey: (name: string) => string | undefined, wake: (name: string) => void) {
    this.#clock = clock;
    this.#redis = redis;
    this.#delayedKey = delayedKey;
    this.#wake = wake;
  }

  /** Wakes `name` at `at` (epoch ms) unless an earlier wake-up is already armed. */
  arm(name: string, at: number): void {
    if (!Number.isFinite(at) || this.#delayedKey(name) === undefined || this.#stopped) return;
    const existing = this.#timers.get(name);
    if (existing && existing.at <= at) return;
    existing?.timer.cancel();
    const timer = this.#clock.setTimer(Math.max(0, at - this.#clock.now()) + 1, () => {
      this.#timers.delete(name);
      this.#wake(name);
      this.armNext(name).catch(() => undefined);
    });
    this.#timers.set(name, { at, timer });
  }

  /**
   * Arms the timer for the earliest delayed run of `name` still in the future (BullMQ's delayed
   * set). Read past what is due now: right after a wake-up, the run that came due is still first
   * in the set until a fetch moves it, and the one after it would wait for the periodic sweep.
   */
  async armNext(name: string): Promise<void> {
    const key = this.#delayedKey(name);
    if (key === undefined) return;
    // BullMQ scores a delayed job by its due time times 4096 (plus a counter below 4096).
    const first = await this.#redis.zrangebyscore(key, (this.#clock.now() + 1) * 4096, '+inf', 'WITHSCORES', 'LIMIT', 0, 1);
    if (first.length < 2) return;
    this.arm(name, Math.floor(Number(first[1]) / 4096));
  }

  /** Cancels every timer; no more are armed (shutdown). */
  stop(): void {
    this.#stopped = true;
    for (const { timer } of this.#timers.values()) timer.cancel();
    this.#timers.clear();
  }
}
