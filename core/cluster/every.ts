import type { Clock, Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';

/**
 * Runs `task` every `ms` (counted from when the last run settled, so runs never overlap) until
 * stopped. A run that fails (Redis out of reach) is logged at debug level; the next tick tries
 * again, so a loop that reads or writes Redis outlives an outage by itself.
 */
export class Every {
  readonly #clock: Clock;
  readonly #ms: number;
  readonly #task: () => Promise<void>;
  readonly #logger: Logger;
  readonly #failed: string;
  #timer: Timer | undefined;
  #stopped = false;

  constructor(clock: Clock, ms: number, task: () => Promise<void>, logger: Logger, failed: string) {
    this.#clock = clock;
    this.#ms = ms;
    this.#task = task;
    this.#logger = logger;
    this.#failed = failed;
  }

  /** Whether `stop()` was called (and `start()` not since). */
  get stopped(): boolean {
    return this.#stopped;
  }

  start(): void {
    this.#stopped = false;
    this.#tick();
  }

  /** Cancels the next run; one in flight settles on its own. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }

  #tick(): void {
    this.#timer = this.#clock.setTimer(this.#ms, () => {
      this.#task().then(
        () => (this.#stopped ? undefined : this.#tick()),
        (err: unknown) => {
          this.#logger.debug({ err }, this.#failed);
          if (!this.#stopped) this.#tick();
        },
      );
    });
  }
}
