import type { Backend, ScheduleFire } from '../contract/backend.js';
import { type Clock, isoTime, type Timer } from '../contract/clock.js';
import { isHostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { type RetryPolicy, retryDelay } from '../contract/retry.js';
import type { Missed } from './missed.js';
import type { JobRegistry } from './registry.js';
import type { Triggers } from './triggers.js';

export interface FiresOptions {
  clock: Clock;
  logger: Logger;
  backend: Backend;
  registry: JobRegistry;
  triggers: Triggers;
  /** For the spread of retried adds. */
  random: () => number;
  /** The `missed` rule: told what each fire made, and of fires missed while the host was down or stalled. */
  missed?: Pick<Missed, 'fired' | 'downtime' | 'stalled'> | undefined;
}

/** Why an add of a fire failed that a later add of the same fire can mend: the backend was out of reach. */
const AGAIN: ReadonlySet<string> = new Set(['BACKEND_UNAVAILABLE', 'BACKEND_NOT_REPLICATED']);
/** How often such a fire is added again: from 0.5 s, doubled up to 4 s, spread ±20% (hosts coming back together spread out). */
const FIRE_RETRY: RetryPolicy = { attempts: Number.POSITIVE_INFINITY, backoff: 'exponential', delayMs: 500, maxDelayMs: 4000, jitter: 0.2 };

/** A fire waiting to be added again (one per job). */
class Retry {
  attempts = 0;
  /** Given up (a newer fire, a stop): its add, if one is on its way, no longer counts. */
  over = false;
  timer: Timer | undefined;
  /** Tells the `missed` rule and the log that the fire made no run. */
  tell: () => void = () => undefined;
  giveUp: () => void = () => undefined;

  constructor(readonly at: number) {}
}

/** Refusals that are the job's own choice, not a fire gone missing. */
const MEANT: ReadonlySet<string> = new Set(['disabled', 'once', 'cooldown', 'fired']);

/** A fire's params refused (the job's schema, `limits.maxParamsBytes`): the config's doing, not the host's. */
const PARAMS_REFUSED: ReadonlySet<string> = new Set(['INVALID_PARAMS', 'PARAMS_TOO_LARGE']);

/**
 * On a shared backend, a missed fire younger than this is left to the live hosts' own timers
 * (one of them is about to make it, or a host whose clock is behind still will): only a fire
 * older than this counts as missed while the whole cluster was down.
 */
export const CATCH_UP_GRACE_MS = 1500;

/**
 * What a schedule fire does: note the fire in the job's state (for catch-up after downtime) and
 * trigger a run. On start, a fire missed while the host was down runs once with `catchUp`.
 * On a shared backend every host fires the jobs it has loaded, and the backend's add admits one
 * run per fire time (noting the fire in the same step), so there is no leader to fail over.
 */
export class Fires {
  readonly #o: FiresOptions;
  /** Per job, the fire being added again until Redis answers (the newest that failed). */
  readonly #retrying = new Map<string, Retry>();
  #stopped = false;

  constructor(options: FiresOptions) {
    this.#o = options;
  }

  /** No more retries of fires that could not reach the backend (the host stops; the next start counts them as downtime). */
  stop(): void {
    this.#stopped = true;
    for (const retry of this.#retrying.values()) {
      retry.over = true;
      retry.timer?.cancel();
    }
    this.#retrying.clear();
  }

  /**
   * A schedule fired for `name`, due at `dueAt`. A timer that came late (a stalled host) fires
   * once for every slot up to `through`: its run stands for them as a catch-up run does for a
   * downtime, and fires up to `through` are recorded as made.
   */
  fire(name: string, dueAt: number, through = dueAt): void {
    // An older fire still waiting for Redis: this one's add records a later fire time, after which
    // the admission refuses the older one: it is missed.
    this.#retrying.get(name)?.giveUp();
    const late = through > dueAt ? through : undefined;
    if (this.#o.backend.shared) return this.#trigger(name, 'schedule', { at: dueAt, record: through }, [dueAt], late);
    this.#note(name, through);
    this.#trigger(name, 'schedule', undefined, [dueAt], late);
  }

  /**
   * Triggers the run of a fire (or a catch-up run) and tells the `missed` rule what came of `dueAts`,
   * the fires it stands for; a late fire (`late`: when it came) stands for the slots it passed too.
   * `retry`: this is an add made again, after Redis was out of reach.
   */
  #trigger(name: string, source: 'schedule' | 'catch-up', fire: ScheduleFire | undefined, dueAts: readonly number[], late?: number, retry?: Retry): void {
    const missed = dueAts.length === 0 ? undefined : this.#o.missed;
    // Counted once the fire is known to be this host's (on a shared backend another host may have made those slots).
    const watched = (): readonly number[] => (missed && late !== undefined ? missed.stalled(name, dueAts[0]!, late) : dueAts);
    /** This add is the one that counts: not one given up meanwhile (a newer fire, a stop), whose end was told there. */
    const current = (): boolean => {
      if (retry?.over) return false;
      if (retry) this.#retrying.delete(name);
      return true;
    };
    this.#o.triggers.create(name, {}, source, undefined, fire).then(
      ({ runId }) => {
        if (current()) missed?.fired(name, watched(), runId, '');
      },
      (err: unknown) => {
        if (retry?.over) return;
        const giveUp = (): void => {
          missed?.fired(name, watched(), null, `the fire could not make a run (${isHostError(err) ? err.code : 'error'})`);
          const what = source === 'schedule' ? 'scheduled trigger' : 'catch-up trigger';
          // Params the job's schema (or size limit) refuses: the config's doing, told by run.skipped
          // (in cluster mode by this line alone): a warning without a stack, not an error of the host's.
          if (isHostError(err) && PARAMS_REFUSED.has(err.code)) this.#o.logger.warn({ job: name, code: err.code }, `${what} refused: ${err.message}`);
          else this.#o.logger.error({ err, job: name }, `${what} failed`);
        };
        // Redis out of reach (a failover, a restart): the same fire is added again until it answers,
        // as BullMQ's add of its derived id and the admission's fire time make a second add of one
        // fire nothing. One per job: the newest fire that failed (an older one is missed).
        if (fire !== undefined && !this.#stopped && isHostError(err) && AGAIN.has(err.code)) {
          const waiting = this.#retrying.get(name);
          if (waiting && waiting !== retry && waiting.at > fire.at) return void (current() && giveUp());
          if (waiting && waiting !== retry) waiting.giveUp();
          const next = retry ?? new Retry(fire.at);
          next.tell = giveUp;
          if (next.attempts === 0)
            this.#o.logger.warn(
              { job: name, code: err.code, fireAt: isoTime(fire.at) },
              'a schedule fire could not reach the backend; adding it again once it answers',
            );
          const delay = retryDelay(FIRE_RETRY, ++next.attempts, this.#o.random);
          next.timer = this.#o.clock.setTimer(delay, () => {
            next.timer = undefined;
            this.#trigger(name, source, fire, dueAts, late, next);
          });
          next.giveUp = () => {
            next.over = true;
            next.timer?.cancel();
            if (this.#retrying.get(name) === next) this.#retrying.delete(name);
            next.tell();
          };
          this.#retrying.set(name, next);
          return;
        }
        if (!current()) return;
        if (isHostError(err) && err.code === 'SKIPPED') {
          // Emitted as run.skipped, or another host ran this fire.
          const reason = String(err.details?.['reason'] ?? 'skipped');
          if (!MEANT.has(reason)) missed?.fired(name, watched(), null, `the fire was refused (${err.message})`);
          return;
        }
        giveUp();
      },
    );
  }

  /**
   * A job was enabled (on this host): its schedule counts from now. A disabled job is not armed, so
   * no fire of its disabled stretch moved `lastFireAt`: a restart before its next fire took those
   * fires for downtime (a catch-up run, `missed` alerts) though the host was up and they were
   * never due.
   */
  enabled(name: string): void {
    if (!this.#o.registry.get(name)?.job.schedule) return;
    const { backend, clock } = this.#o;
    // On a shared backend the add refuses a fire at or before `lastFireAt` (another host made it):
    // the mark stays CATCH_UP_GRACE_MS behind this host's clock, the skew the cluster allows, so a
    // host whose clock is behind still makes its next fire. It only ever moves forward.
    const at = backend.shared ? clock.now() - CATCH_UP_GRACE_MS : clock.now();
    if ((backend.jobState(name).lastFireAt ?? Number.NEGATIVE_INFINITY) >= at) return;
    this.#note(name, at);
  }

  /** Records a fire for catch-up; a failed write (a full disk, Redis down) costs at most one catch-up run. */
  #note(name: string, at: number): void {
    this.#o.backend
      .setJobFlags(name, { lastFireAt: at })
      .catch((err: unknown) => this.#o.logger.warn({ err, job: name }, 'could not record the schedule fire'));
  }

  /** With catchUp, a fire missed while the host (on a shared backend: every host) was down runs once; without, it is logged. */
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
    const grace = backend.shared ? CATCH_UP_GRACE_MS : 0;
    // Fires of the downtime whose `missedAfter` has not run out yet: a catch-up run stands for them, or they are missed at their time.
    const pending = this.#o.missed?.downtime(name, lastFireAt, now - grace) ?? [];
    if (missed === null || missed > now - grace) return;
    if (!job.catchUp) {
      this.#o.missed?.fired(name, pending, null, 'the host was down');
      this.#note(name, now);
      this.#o.logger.info({ job: name, missed: isoTime(missed) }, 'schedule fires were missed while the host was down; catchUp is off');
      return;
    }
    // Shared: the add notes `now` only if no host has fired since `missed`, so hosts starting together catch up once.
    if (backend.shared) return this.#trigger(name, 'catch-up', { at: missed, record: now }, pending);
    this.#note(name, now);
    this.#trigger(name, 'catch-up', undefined, pending);
  }
}
