import type { RunObserver, UntoldEnd } from '../contract/attempt.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { NotifyStatus } from '../contract/notification.js';
import { isFinal, type Run, type RunStatus } from '../contract/run.js';
import { Every } from './every.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Ends of runs written but not yet told (SPEC §12, cluster mode). The notification of a run's end
 * is a write after the end's own (it goes through the alert rules and storm control first), so
 * the end's write marks it untold (`jhFold`: the run id, scored by Redis's time, with the outcome,
 * the streaks it left, the job and the host), and the host drops the mark once it has told it. A
 * host killed (or cut off) in between leaves the mark: every host looks for marks every SCAN_MS,
 * and one that has the job takes each mark of a host no longer live (after MIN_AGE_MS; a host
 * restarted under the same id is another), or of any host after GRACE_MS, moving it to itself,
 * and tells the end as the streaks it left say. The mark fences the telling: a notification of
 * the end is recorded only by the host holding the mark (`jhAddNotification`), which notes it
 * there, so a host that lost its mark records nothing (the new holder tells it), and the new
 * holder does not make again what was recorded. A message storm control held back before a kill
 * may be counted twice in its digest.
 */

/** How often each host looks for untold ends. */
const SCAN_MS = 5000;
/** A mark this young is its host's, whatever the host's state (its notification is on its way). */
const MIN_AGE_MS = 2000;
/** A mark of a live host this old is taken anyway: the host holds it no longer (its write failed, or it stalls). */
const GRACE_MS = 30_000;
/** A mark no host could tell in a day (no host has its job) is dropped. */
const MAX_AGE_MS = 86_400_000;
/** Marks one look takes at most. */
const TAKE_LIMIT = 100;
/** Marks this host remembers as its own to drop (a bound: a mark left over is taken later, and told once). */
const MARKED_MAX = 100_000;

export interface UntoldOptions {
  clock: Clock;
  redis: ScriptedRedis;
  keys: ClusterKeys;
  /** This host, as its marks name it (`incarnation` below). */
  self(): string;
  logger: Logger;
  /** The live hosts (this one included), as their marks name them. */
  live(): string[];
  /** The jobs this host has that tell something: it takes the marks of those only. */
  jobs(): Iterable<string>;
  getRun(id: string): Promise<Run | undefined>;
  /** The engine's observer, once opened. */
  observer(): RunObserver | undefined;
}

/** The statuses of the notifications of a run's end (what the mark fences). */
const TELLS_END: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled', 'recovered']);

/**
 * A host as its marks name it: its id and when it started, so the marks a host left before a
 * restart under the same id (a kill, then `jobhost start` again) are another host's, no longer live.
 */
export function incarnation(host: { id: string; startedAt: string }): string {
  // A tab would split the mark's fields (`untold-scripts.ts`).
  return `${host.id.replaceAll('\t', ' ')} ${host.startedAt}`;
}

export class UntoldEnds {
  readonly #o: UntoldOptions;
  readonly #scans: Every;
  /** Runs whose end's mark this host holds (made here, or taken) while it tells them, oldest first. */
  readonly #marked = new Set<string>();
  /** Where the next look starts among the due marks (past a full window of marks it could not take). */
  #offset = 0;
  /** Marks to drop in this turn's round trip. */
  #drop: string[] = [];

  constructor(options: UntoldOptions) {
    this.#o = options;
    this.#scans = new Every(options.clock, SCAN_MS, () => this.#scan(), options.logger, 'could not look for untold run ends');
  }

  start(): void {
    this.#scans.start();
  }

  stop(): void {
    this.#scans.stop();
  }

  /** The write that ended `runId` here marked it untold. */
  marked(runId: string): void {
    if (this.#marked.size >= MARKED_MAX) {
      // The oldest half: ends whose telling never settled here (in flight ones are the newest).
      let n = MARKED_MAX / 2;
      for (const id of this.#marked) {
        if (n-- <= 0) break;
        this.#marked.delete(id);
      }
    }
    this.#marked.add(runId);
  }

  /** The fence of notification `n` (`jhAddNotification`): one of a run's end whose mark this host holds. */
  fence(n: { runId: string; status: string }): { runId: string; host: string } | undefined {
    if (n.runId === '' || !TELLS_END.has(n.status) || !this.#marked.has(n.runId)) return undefined;
    return { runId: n.runId, host: this.#o.self() };
  }

  /**
   * `runId`'s end is told (`done`: its notifications recorded, or none was due), and its mark goes
   * if this host still holds it (the drops of one turn in one round trip); or its telling failed
   * (`done` false), and the mark stays, for a host (this one too) to take after GRACE_MS.
   */
  told(runId: string, done: boolean): void {
    if (!this.#marked.delete(runId) || !done) return;
    this.#drop.push(runId);
    if (this.#drop.length === 1) setImmediate(() => this.#flush());
  }

  #flush(): void {
    const ids = this.#drop;
    this.#drop = [];
    const { redis, keys } = this.#o;
    redis
      .jhDropUntold(keys.untold, keys.untoldEnds, this.#o.self(), ...ids)
      // Left in Redis: a host (this one too) takes it after GRACE_MS and finds it told.
      .catch((err: unknown) => this.#o.logger.debug({ err, runs: ids.length }, 'could not drop the marks of told run ends'));
  }

  async #scan(): Promise<void> {
    const observer = this.#o.observer();
    if (!observer) return;
    const { redis, keys } = this.#o;
    const self = this.#o.self();
    const live = [...new Set([self, ...this.#o.live()])];
    const [looked, ...taken] = await redis.jhTakeUntold(
      keys.untold,
      keys.untoldEnds,
      String(MIN_AGE_MS),
      String(GRACE_MS),
      String(TAKE_LIMIT),
      String(MAX_AGE_MS),
      self,
      String(this.#offset),
      String(live.length),
      ...live,
      ...this.#o.jobs(),
    );
    // A full window: the next look goes on past it (marks of jobs no host here has could fill it for a day).
    this.#offset = Number(looked) >= TAKE_LIMIT * 10 ? this.#offset + Number(looked) - taken.length / 5 : 0;
    for (let i = 0; i + 4 < taken.length; i += 5) {
      const [id, outcome, fail, ended, recorded] = taken.slice(i, i + 5) as [string, string, string, string, string];
      if (outcome === '') {
        if (fail === 'old') this.#o.logger.warn({ runId: id }, 'a run end no host that has its job told in a day is dropped untold');
        else this.#o.logger.warn({ runId: id }, 'an untold run end whose mark could not be read is dropped');
        continue;
      }
      // Its own, still being told here (a record that waits for Redis): not told twice.
      if (this.#marked.has(id)) continue;
      const told = recorded.split(',').filter((s): s is NotifyStatus => s !== '');
      // One after the other, in the order of their ends: a job's failure is told before its recovery.
      await this.#tell(observer, id, outcome, { failStreak: Number(fail), endedStreak: Number(ended), recorded: told });
    }
  }

  async #tell(observer: RunObserver, id: string, outcome: string, untold: UntoldEnd): Promise<void> {
    const run = await this.#o.getRun(id).catch((err: unknown) => {
      this.#o.logger.warn({ err, runId: id }, 'could not read an untold run end');
      return null;
    });
    // Unread: the mark stays (this host holds it), taken again after GRACE_MS.
    if (run === null) return;
    this.marked(id);
    // Gone (retention) or not an end: nothing to tell of it.
    if (run === undefined || !isFinal(run.status) || !isFinal(outcome as RunStatus)) return this.told(id, true);
    this.#o.logger.info({ runId: id, job: run.job, outcome, told: untold.recorded }, 'telling a run end its host left untold');
    observer.settled(run, outcome as NotifyStatus, untold);
  }
}
