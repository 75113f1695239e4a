import type { Backend } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { isHostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { JobRegistry } from './registry.js';
import type { Triggers } from './triggers.js';

export interface FiresOptions {
  clock: Clock;
  logger: Logger;
  backend: Backend;
  registry: JobRegistry;
  triggers: Triggers;
}

/**
 * What a schedule fire does: note the fire in the job's state (for catch-up after downtime) and
 * trigger a run. On start, a fire missed while the host was down runs once with `catchUp`.
 */
export class Fires {
  readonly #o: FiresOptions;

  constructor(options: FiresOptions) {
    this.#o = options;
  }

  /** A schedule fired for `name`, due at `dueAt`. */
  fire(name: string, dueAt: number): void {
    this.#note(name, dueAt);
    this.#o.triggers.create(name, {}, 'schedule').catch((err: unknown) => {
      if (isHostError(err) && err.code === 'SKIPPED') return; // already emitted as run.skipped
      this.#o.logger.error({ err, job: name }, 'scheduled trigger failed');
    });
  }

  /** Records a fire for catch-up; a failed write (a full disk, Redis down) costs at most one catch-up run. */
  #note(name: string, at: number): void {
    this.#o.backend
      .setJobFlags(name, { lastFireAt: at })
      .catch((err: unknown) => this.#o.logger.warn({ err, job: name }, 'could not record the schedule fire'));
  }

  /** With catchUp, a fire missed while the host was down runs once; without, it is logged. */
  catchUp(name: string): void {
    const job = this.#o.registry.get(name)?.job;
    if (!job?.schedule || !job.enabled) return;
    const { backend, clock } = this.#o;
    const lastFireAt = backend.jobState(name).lastFireAt;
    const now = clock.now();
    if (lastFireAt === undefined) {
      // The baseline: fires after this moment count as missed if the host is down for them.
      this.#note(name, now);
      return;
    }
    const missed = job.schedule.next(lastFireAt);
    if (missed === null || missed > now) return;
    this.#note(name, now);
    if (!job.catchUp) {
      this.#o.logger.info({ job: name, missed: isoTime(missed) }, 'schedule fires were missed while the host was down; catchUp is off');
      return;
    }
    this.#o.triggers.create(name, {}, 'catch-up').catch((err: unknown) => {
      if (!(isHostError(err) && err.code === 'SKIPPED')) this.#o.logger.error({ err, job: name }, 'catch-up trigger failed');
    });
  }
}
