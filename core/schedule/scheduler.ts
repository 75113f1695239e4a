import type { Clock, Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Schedule } from './cron.js';

export interface SchedulerOptions {
  clock: Clock;
  logger: Logger;
  /**
   * Called at each fire with the time the fire was due (ms), and the time up to which it stands
   * for the schedule: `dueAt`, or later when the timer came a whole period or more late (a
   * stalled host), whose slots in between are not fired.
   */
  fire(job: string, dueAt: number, through: number): void;
}

/** No schedule fires more often (`every` is at least 1 s; cron's finest field is the second): a timer later than this passed no slot. */
const MIN_PERIOD_MS = 1000;

interface Armed {
  schedule: Schedule;
  next: number | null;
  timer: Timer | undefined;
}

/**
 * Decides when jobs fire; knows nothing of running them. One timer per scheduled job, armed for
 * its next fire time. A fire that comes late (a blocked event loop) fires once, never once per
 * missed slot, says up to when it stands for the schedule, and the next slot is counted from then.
 */
export class Scheduler {
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #fire: (job: string, dueAt: number, through: number) => void;
  readonly #jobs = new Map<string, Armed>();
  #running = false;

  constructor(options: SchedulerOptions) {
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#fire = options.fire;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Sets, replaces or (with null) removes a job's schedule; re-arms its timer. */
  set(job: string, schedule: Schedule | null): void {
    const old = this.#jobs.get(job);
    old?.timer?.cancel();
    if (!schedule) {
      this.#jobs.delete(job);
      return;
    }
    const armed: Armed = { schedule, next: null, timer: undefined };
    this.#jobs.set(job, armed);
    this.#arm(job, armed, this.#clock.now());
  }

  /** The next fire time of `job` (ms), or null when it has no schedule. */
  next(job: string): number | null {
    const armed = this.#jobs.get(job);
    if (!armed) return null;
    return armed.next ?? this.#safeNext(job, armed.schedule, this.#clock.now());
  }

  has(job: string): boolean {
    return this.#jobs.has(job);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const now = this.#clock.now();
    for (const [job, armed] of this.#jobs) this.#arm(job, armed, now);
  }

  stop(): void {
    this.#running = false;
    for (const armed of this.#jobs.values()) {
      armed.timer?.cancel();
      armed.timer = undefined;
      armed.next = null;
    }
  }

  #safeNext(job: string, schedule: Schedule, after: number): number | null {
    try {
      return schedule.next(after);
    } catch (err) {
      this.#logger.error({ err, job }, 'could not compute the next fire time; the schedule is off');
      return null;
    }
  }

  #arm(job: string, armed: Armed, after: number): void {
    if (!this.#running) return;
    armed.timer?.cancel();
    const next = this.#safeNext(job, armed.schedule, after);
    armed.next = next;
    if (next === null) return;
    armed.timer = this.#clock.setTimer(Math.max(0, next - this.#clock.now()), () => {
      if (this.#jobs.get(job) !== armed || !this.#running) return;
      armed.timer = undefined;
      const now = this.#clock.now();
      try {
        this.#fire(job, next, now - next >= MIN_PERIOD_MS ? now : next);
      } catch (err) {
        this.#logger.error({ err, job }, 'schedule fire failed');
      }
      this.#arm(job, armed, Math.max(next, now));
    });
  }
}
