import type { RunObserver } from '../contract/attempt.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { NotifyStatus } from '../contract/notification.js';
import type { Run } from '../contract/run.js';
import { Every } from './every.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Ends of runs written but not yet told (SPEC §12, cluster mode). The notification of a run's end
 * is a write after the end's own (it goes through the alert rules and storm control first), so
 * the end's write marks it untold (`jhFold`: the run id, scored by Redis's time, with the outcome,
 * the streaks it left and the host), and the host drops the mark once it has told it. A host
 * killed (or cut off) in between leaves the mark: every host looks for marks every SCAN_MS, and
 * one takes each mark of a host no longer live (after MIN_AGE_MS; a host restarted under the same id is another), or of any host after GRACE_MS,
 * moving it to itself, and tells the end as the streaks it left say. Notifications of the run
 * already recorded are not made again; one held back by storm control may be counted twice.
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
  getRun(id: string): Promise<Run | undefined>;
  /** The engine's observer, once opened. */
  observer(): RunObserver | undefined;
}

const ENDS: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled']);

/**
 * A host as its marks name it: its id and when it started, so the marks a host left before a
 * restart under the same id (a kill, then `jobhost start` again) are another host's, no longer live.
 */
export function incarnation(host: { id: string; startedAt: string }): string {
  return `${host.id} ${host.startedAt}`;
}

export class UntoldEnds {
  readonly #o: UntoldOptions;
  readonly #scans: Every;
  /** Runs whose end this host marked (or took), until it has told them. */
  #marked = new Set<string>();
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
    if (this.#marked.size >= MARKED_MAX) this.#marked = new Set();
    this.#marked.add(runId);
  }

  /** `runId`'s end is told: its mark goes (the drops of one turn in one round trip). */
  told(runId: string): void {
    if (!this.#marked.delete(runId)) return;
    this.#drop.push(runId);
    if (this.#drop.length === 1) setImmediate(() => this.#flush());
  }

  #flush(): void {
    const ids = this.#drop;
    this.#drop = [];
    const { redis, keys } = this.#o;
    redis
      .multi()
      .zrem(keys.untold, ...ids)
      .hdel(keys.untoldEnds, ...ids)
      .exec()
      // Left in Redis: another host (or this one) takes it after GRACE_MS and finds it told.
      .catch((err: unknown) => this.#o.logger.debug({ err, runs: ids.length }, 'could not drop the marks of told run ends'));
  }

  async #scan(): Promise<void> {
    const observer = this.#o.observer();
    if (!observer) return;
    const { redis, keys } = this.#o;
    const self = this.#o.self();
    const taken = await redis.jhTakeUntold(
      keys.untold,
      keys.untoldEnds,
      String(MIN_AGE_MS),
      String(GRACE_MS),
      String(TAKE_LIMIT),
      String(MAX_AGE_MS),
      self,
      ...new Set([self, ...this.#o.live()]),
    );
    for (let i = 0; i + 3 < taken.length; i += 4) {
      const [id, outcome, fail, ended] = taken.slice(i, i + 4) as [string, string, string, string];
      if (outcome === '') {
        this.#o.logger.warn({ runId: id }, 'a run end no host could tell for a day is dropped untold');
        continue;
      }
      await this.#tell(observer, id, outcome, Number(fail), Number(ended));
    }
  }

  async #tell(observer: RunObserver, id: string, outcome: string, failStreak: number, endedStreak: number): Promise<void> {
    const run = await this.#o.getRun(id).catch((err: unknown) => {
      this.#o.logger.warn({ err, runId: id }, 'could not read an untold run end');
      return null;
    });
    if (run === null) return;
    this.marked(id);
    // Gone (retention) or not an end: nothing to tell of it.
    if (run === undefined || !ENDS.has(run.status) || !ENDS.has(outcome)) return this.told(id);
    this.#o.logger.info({ runId: id, job: run.job, outcome }, 'telling a run end its host left untold');
    observer.settled(run, outcome as NotifyStatus, { failStreak, endedStreak });
  }
}
