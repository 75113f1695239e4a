import type { Backend, MissedWatch } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { DueTimer } from '../contract/due-heap.js';
import { formatDuration } from '../contract/duration.js';
import type { Logger } from '../contract/logger.js';
import { wants } from '../contract/plugin-schema.js';
import type { RunSource } from '../contract/run.js';
import type { Schedule } from '../schedule/cron.js';
import type { EffectiveJob } from './jobs.js';

export interface MissedOptions {
  clock: Clock;
  logger: Logger;
  backend(): Backend;
  job(name: string): EffectiveJob | undefined;
  /** Sends the `missed` notification of a fire. */
  alert(job: string, fireAt: number, reason: string): void;
}

/** The default `missedAfter`: one period of the schedule at the fire, at most an hour. */
const MAX_DEFAULT_MS = 3_600_000;
/** Fires found missed at start (or passed by a late timer) are notified one by one up to this many per job; the rest are summed up in the last. */
const DOWNTIME_MAX = 20;
/** When a fire's run could not be read at its deadline (Redis out of reach), the next look. */
const LOOK_AGAIN_MS = 1000;
/** Starts remembered for a fire whose watch is not set yet: far more than one turn of the event loop starts. */
const EARLY_MAX = 10_000;

interface Watch {
  job: string;
  fireAt: number;
  deadline: number;
  /** The fire's run, until it starts; null when the fire made none. */
  runId: string | null;
  reason: string;
}

/** How long after `fireAt` a fire of `job` may take to start its run. */
export function missedAfter(job: EffectiveJob, schedule: Schedule, fireAt: number): number {
  if (job.notify?.missedAfter !== undefined) return job.notify.missedAfter;
  const next = schedule.next(fireAt);
  return Math.min(next === null ? MAX_DEFAULT_MS : Math.max(1000, next - fireAt), MAX_DEFAULT_MS);
}

/**
 * The `missed` rule (SPEC §12): each schedule fire of a job that asks for it is watched until
 * its run starts; a fire that made no run (refused by overlap, no room to record it) or whose
 * run has not started `missedAfter` after the fire time is missed, once per fire (the backend's
 * `claimMissed` says which host, and whether a restart already told). Each watch is also kept by
 * the backend, so the fires still watched when the host stopped or was killed are watched again
 * at start (`downtime`), as are the fires the host (or every host) was down for, and those a
 * late timer passed while the host was stalled (`stalled`). A disabled job is never missed.
 */
export class Missed {
  readonly #o: MissedOptions;
  readonly #timer: DueTimer<Watch>;
  /** Watches whose run has not started, by run id. */
  readonly #byRun = new Map<string, Watch[]>();
  /** Runs that started before their fire's watch was set (a start can come before the add's promise resolves), with when; bounded. */
  #early = new Map<string, number>();
  /** Per job, the look at the watches a restart found open: other claims of the job wait for it (they must come in fire order). */
  readonly #resuming = new Map<string, Promise<void>>();
  /** Claims of missed fires that could not reach the backend, tried again (`job@fireAt`): logged once each. */
  readonly #claiming = new Set<string>();
  #stopped = false;

  constructor(options: MissedOptions) {
    this.#o = options;
    this.#timer = new DueTimer(options.clock, (w) => this.#due(w));
  }

  /**
   * A schedule fire of `name` at `fireAt` made run `runId`, or none (`runId` null, with why). A
   * catch-up run stands for every fire the host was down for that is not missed yet: it names them all.
   */
  fired(name: string, fireAt: number | readonly number[], runId: string | null, reason: string): void {
    // Taken out first: a job without the rule must not leave its early starts behind.
    const startedAt = runId === null ? undefined : this.#early.get(runId);
    if (startedAt !== undefined) this.#early.delete(runId!);
    const job = this.#watched(name);
    if (!job?.schedule) return;
    const schedule = job.schedule;
    const watches = (typeof fireAt === 'number' ? [fireAt] : fireAt).map(
      (at): Watch => ({ job: name, fireAt: at, deadline: at + missedAfter(job, schedule, at), runId, reason }),
    );
    if (startedAt !== undefined) {
      // Started already: in time, or after a deadline (the host stalled between the fire and its start).
      for (const w of watches) {
        if (startedAt > w.deadline) this.#claim(name, w.fireAt, `its run ${runId} started more than ${formatDuration(w.deadline - w.fireAt)} after the fire`);
      }
      return;
    }
    if (watches.length === 0) return;
    if (runId !== null) this.#byRun.set(runId, watches);
    const now = this.#o.clock.now();
    for (const w of watches) {
      this.#timer.push(w.deadline, w);
      // Kept by the backend too: a crash before the deadline must not take the watch with it.
      this.#o
        .backend()
        .keepMissedWatch(name, { fireAt: w.fireAt, deadline: w.deadline, runId, reason }, now)
        .catch((err: unknown) => this.#o.logger.warn({ err, job: name, fireAt: isoTime(w.fireAt) }, 'could not keep the watch on a schedule fire'));
    }
  }

  /**
   * A run started: its fire is not missed. Only a schedule's runs are kept for a watch set later
   * (a start is the hot path; a debounced fire's run waits out its window, so its watch is set first).
   */
  started(runId: string, source: RunSource): void {
    const watches = this.#byRun.get(runId);
    if (!watches) {
      if (source !== 'schedule' && source !== 'catch-up') return;
      if (this.#early.size >= EARLY_MAX) this.#early = new Map();
      this.#early.set(runId, this.#o.clock.now());
      return;
    }
    this.#byRun.delete(runId);
    for (const w of watches) {
      // Started in time: no longer kept against a restart (as it was kept, so the backend finds it).
      const kept: MissedWatch = { fireAt: w.fireAt, deadline: w.deadline, runId, reason: w.reason };
      this.#o
        .backend()
        .dropMissedWatch(w.job, kept)
        .catch((err: unknown) => this.#o.logger.debug({ err, job: w.job }, 'could not drop the watch on a schedule fire'));
      w.runId = null;
      w.reason = '';
    }
  }

  /**
   * At start: the fires of `name` after `since` (the last fire recorded) up to `through` came
   * while the host was down. Those past their `missedAfter` now were missed; the others are
   * returned, to be watched like any fire once the caller knows whether a catch-up run stands for
   * them (`fired`).
   */
  downtime(name: string, since: number, through: number): number[] {
    const job = this.#watched(name);
    if (!job?.schedule) return [];
    this.#resume(name, since);
    return this.#unmade(name, job, job.schedule, since, through, this.#o.clock.now(), 'the host was down');
  }

  /**
   * A timer came late (the host was stalled): its fire, due at `dueAt`, stands for every slot up
   * to `through`, when it came. Those whose `missedAfter` had run out by then were missed (no run
   * made now can start in time for them), told as a downtime's are; the others are returned, to be
   * watched with the fire's run (`fired`).
   */
  stalled(name: string, dueAt: number, through: number): number[] {
    const job = this.#watched(name);
    if (!job?.schedule) return [dueAt];
    // The fire itself is one of them: counted from just before it.
    return this.#unmade(name, job, job.schedule, dueAt - 1, through, through, 'the host was stalled');
  }

  /**
   * The fires of `name` after `since` up to `through` that no fire of the host made on time (it
   * was down, or stalled): those whose `missedAfter` ran out by `at` are told, one by one up to
   * DOWNTIME_MAX, the last saying how many later ones it stands for; the others are returned.
   */
  #unmade(name: string, job: EffectiveJob, schedule: Schedule, since: number, through: number, at: number, why: string): number[] {
    const fires: number[] = [];
    const pending: number[] = [];
    let more = 0;
    let seen = 0;
    // Fires up to missedThrough are accounted for (told, or in a disabled stretch): the count starts after them.
    const from = Math.max(since, this.#o.backend().jobState(name).missedThrough ?? since);
    for (let fire = schedule.next(from); fire !== null && fire <= through; fire = schedule.next(fire)) {
      // A every-second job down for days: the count stops here rather than hold up the start.
      if (++seen > 10_000) break;
      if (fire + missedAfter(job, schedule, fire) > at) {
        if (pending.length < DOWNTIME_MAX) pending.push(fire);
      } else if (fires.length < DOWNTIME_MAX) fires.push(fire);
      else more++;
    }
    const atLeast = seen > 10_000 ? 'at least ' : '';
    fires.forEach((fire, i) => {
      const rest = i === fires.length - 1 && more > 0 ? ` (and ${atLeast}${more} later fire${more === 1 ? '' : 's'})` : '';
      this.#claim(name, fire, `${why}${rest}`);
    });
    return pending;
  }

  /** A job was enabled: the fires of its disabled stretch were never due, so none of them is missed. */
  enabled(name: string): void {
    const job = this.#watched(name);
    if (!job) return;
    this.#o
      .backend()
      .claimMissed(name, this.#o.clock.now())
      .catch((err: unknown) => this.#o.logger.warn({ err, job: name }, 'could not record where missed fires start again'));
  }

  /**
   * At start: the watches the backend kept for fires up to `since` (the last fire recorded) that
   * were still open when the host stopped or was killed: a fire that made no run, or whose run had
   * not started. Each is missed now if its deadline has passed (a run that started after it is
   * late), else watched again. A fire told before the restart is not told again (`claimMissed`).
   */
  #resume(name: string, since: number): void {
    const backend = this.#o.backend();
    const done = backend
      .missedWatches(name)
      .then(async (kept) => {
        // Oldest first, each claim awaited: `missedThrough` only grows, so a later fire claimed first would hide an earlier one.
        for (const w of kept) {
          if (this.#stopped) return;
          if (w.fireAt > since || w.fireAt <= (backend.jobState(name).missedThrough ?? -Infinity)) continue;
          await this.#resumeWatch(name, w);
        }
      })
      .catch((err: unknown) => this.#o.logger.warn({ err, job: name }, 'could not read the watches on schedule fires kept before the restart'))
      .finally(() => this.#resuming.delete(name));
    this.#resuming.set(name, done);
  }

  async #resumeWatch(name: string, kept: MissedWatch): Promise<void> {
    const { fireAt, deadline, runId } = kept;
    const waited = formatDuration(deadline - fireAt);
    if (runId !== null) {
      // Out of reach (Redis down): looked at again, as a due watch is (see `#due`).
      const run = await this.#o
        .backend()
        .getRun(runId)
        .catch(() => null);
      if (run === null) {
        const w: Watch = { job: name, fireAt, deadline, runId, reason: '' };
        this.#byRun.set(runId, [...(this.#byRun.get(runId) ?? []), w]);
        this.#timer.push(Math.max(deadline, this.#o.clock.now() + LOOK_AGAIN_MS), w);
        return;
      }
      if (run?.startedAt) {
        if (Date.parse(run.startedAt) > deadline) await this.#tell(name, fireAt, `its run ${runId} started more than ${waited} after the fire`);
        return;
      }
    }
    const reason = runId === null ? kept.reason : `its run ${runId} had not started ${waited} after the fire`;
    if (deadline <= this.#o.clock.now()) return this.#tell(name, fireAt, reason);
    // Started while this look was on its way: before the deadline.
    if (runId !== null && this.#early.delete(runId)) return;
    const w: Watch = { job: name, fireAt, deadline, runId, reason: runId === null ? kept.reason : '' };
    if (runId !== null) this.#byRun.set(runId, [...(this.#byRun.get(runId) ?? []), w]);
    this.#timer.push(deadline, w);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer.close();
    this.#byRun.clear();
    this.#claiming.clear();
  }

  /** The job, when it asks for `missed` and is enabled. */
  #watched(name: string): EffectiveJob | undefined {
    const job = this.#o.job(name);
    return job?.enabled && job.notify && wants(job.notify, 'missed') ? job : undefined;
  }

  #due(w: Watch): void {
    const started = w.runId === null && w.reason === '';
    if (w.runId !== null) {
      // A catch-up run's later fires stay watched: the run may still start before their time.
      const rest = this.#byRun.get(w.runId)?.filter((x) => x !== w);
      if (rest?.length) this.#byRun.set(w.runId, rest);
      else this.#byRun.delete(w.runId);
    }
    const job = this.#watched(w.job);
    if (started || !job?.schedule) return;
    const waited = formatDuration(w.deadline - w.fireAt);
    if (w.runId === null) return this.#claim(w.job, w.fireAt, w.reason);
    // This host sees only its own starts: on a shared backend the run may have started on another
    // host (or started here unseen), so the run itself says.
    const runId = w.runId;
    const deadline = w.deadline;
    const tell = (): void => {
      if (!this.#stopped) this.#claim(w.job, w.fireAt, `its run ${runId} had not started ${waited} after the fire`);
    };
    this.#o
      .backend()
      .getRun(runId)
      .then(
        (run) => {
          // Started in time (a start after the deadline, while this look was on its way, is still late).
          if (run?.startedAt && Date.parse(run.startedAt) <= deadline) return;
          tell();
        },
        // Out of reach (Redis down): looked at again shortly, not told as the watch says: the run
        // may well have started in time on another host. A stop leaves the watch kept for the next start.
        (err: unknown) => {
          if (this.#stopped) return;
          this.#o.logger.debug({ err, job: w.job, runId }, 'could not read the run of a watched schedule fire; looking again');
          this.#timer.push(this.#o.clock.now() + LOOK_AGAIN_MS, w);
        },
      );
  }

  /** Tells a missed fire once; after the look at the job's kept watches, when one is on its way (they are earlier fires). */
  #claim(job: string, fireAt: number, reason: string): void {
    const resuming = this.#resuming.get(job);
    if (resuming) void resuming.then(() => this.#tell(job, fireAt, reason));
    else void this.#tell(job, fireAt, reason);
  }

  #tell(job: string, fireAt: number, reason: string): Promise<void> {
    return this.#o
      .backend()
      .claimMissed(job, fireAt)
      .then((mine) => {
        this.#claiming.delete(`${job}@${fireAt}`);
        if (mine && !this.#stopped) this.#o.alert(job, fireAt, reason);
      })
      .catch((err: unknown) => {
        if (this.#stopped) return;
        // Redis out of reach: claimed again shortly (a watch without a run is a claim when due), not lost.
        const key = `${job}@${fireAt}`;
        const first = !this.#claiming.has(key);
        this.#claiming.add(key);
        this.#o.logger[first ? 'warn' : 'debug']({ err, job, fireAt: isoTime(fireAt) }, 'could not record a missed fire; trying again');
        const now = this.#o.clock.now();
        this.#timer.push(now + LOOK_AGAIN_MS, { job, fireAt, deadline: now + LOOK_AGAIN_MS, runId: null, reason });
      });
  }
}
