import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Low } from 'lowdb';
import type { JobState, NotificationQuery } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import { isFinal, type Page, type Run, type RunQuery } from '../contract/run.js';
import type { BackendStats } from '../contract/views.js';
import { AppendFile, DurableJsonFile, NdjsonFile } from './files.js';
import { GroupCommit } from './group-commit.js';
import { History, type SegmentInfo } from './history.js';
import { foldFinished } from './job-state.js';
import { NotificationLog } from './notification-log.js';
import { serializeRun } from './serialize.js';

/**
 * The run store. On disk (SPEC §4, §6):
 *
 *   state.json            checkpoint (a lowdb document): job records, unfinished runs, recent
 *                         notifications, the index of sealed segments
 *   journal-<n>.ndjson    everything saved since checkpoint n, appended with group commit
 *   segments/<n>.ndjson   finished runs, one per line; immutable once sealed
 *
 * A save only marks the run dirty; one commit per tick serializes every dirty record once, in one
 * write and one fdatasync per file, and resolves every waiter. Finished runs go to the open
 * segment, so a write never rewrites history, and retention drops whole segments.
 */

export interface LoadedState {
  /** Runs that had not finished (queued, delayed, running), oldest first. */
  runs: Run[];
}

export interface Store {
  open(): Promise<LoadedState>;
  /** Records the run's current state; resolves once that state (or a newer one) is durable. */
  saveRun(run: Run): Promise<void>;
  /**
   * A job's state (created empty on first use; the store's own object, changed in place).
   * Aggregates go into the next checkpoint; flags are journaled by `saveJob`.
   */
  job(name: string): JobState;
  jobs(): ReadonlyMap<string, JobState>;
  /** Journals a job's flags (`enabled`, `lastFireAt`); resolves once durable. */
  saveJob(name: string): Promise<void>;
  saveNotification(notification: Notification): Promise<void>;
  getRun(id: string): Promise<Run | undefined>;
  listRuns(query: RunQuery): Promise<Page<Run>>;
  listNotifications(query: NotificationQuery): Page<Notification>;
  /** Resolves when everything saved so far is durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
  stats(): BackendStats;
}

export interface StoreOptions {
  /** Directory for the files; null keeps everything in memory (same behaviour, nothing durable). */
  dir: string | null;
  fsync?: boolean;
  keepRuns?: number;
  keepDays?: number;
  /** Finished runs per segment (default: keepRuns / 10, between 100 and 2,000). */
  segmentSize?: number;
  /** Journal size that triggers a checkpoint (default 16 MiB). */
  checkpointBytes?: number;
  /** Finished runs that trigger a checkpoint (default 20,000). */
  checkpointRuns?: number;
  clock: Clock;
  logger: Logger;
}

interface StateDoc {
  version: 1;
  checkpoint: number;
  openSegment: number;
  /** Where the runs not yet folded into `jobs` start: a segment and a line in it. */
  foldFrom?: { segment: number; line: number };
  /** Runs after `foldFrom` that `jobs` already counts (finished, not yet written at the checkpoint). */
  foldSkip?: string[];
  segments: SegmentInfo[];
  jobs: Record<string, JobState>;
  live: Run[];
  notifications: Notification[];
}

type JobFlags = { enabled: boolean | null; lastFireAt: number | null };
type JournalRecord = { r: Run } | { j: string; f: JobFlags } | { n: Notification };

const DAY = 86_400_000;

const clone = <T>(value: T): T => structuredClone(value);

export function createStore(options: StoreOptions): Store {
  return new SegmentedStore(options);
}

class SegmentedStore implements Store {
  readonly #dir: string | null;
  readonly #fsync: boolean;
  readonly #checkpointBytes: number;
  readonly #checkpointRuns: number;
  readonly #clock: Clock;
  readonly #logger: Logger;

  #db: Low<StateDoc> | undefined;
  #checkpointN = 0;
  #journal: AppendFile | undefined;
  readonly #history: History;
  #finishedSinceCheckpoint = 0;

  /** Runs not yet durably finished: the source of recovery and of the newest history page. */
  readonly #live = new Map<string, Run>();
  readonly #jobs = new Map<string, JobState>();
  readonly #notifications = new NotificationLog();

  readonly #dirtyRuns = new Set<Run>();
  readonly #dirtyJobs = new Set<string>();
  #dirtyNotifications: Notification[] = [];
  readonly #group: GroupCommit;
  #commits = 0;
  #closed = false;
  #opened = false;

  constructor(options: StoreOptions) {
    this.#dir = options.dir;
    this.#fsync = options.fsync ?? true;
    const keepRuns = options.keepRuns ?? 1000;
    this.#history = new History({
      dir: options.dir,
      fsync: this.#fsync,
      keepRuns,
      keepDaysMs: (options.keepDays ?? 30) * DAY,
      // Small enough that reading one back (GET /runs, a cache miss) parses ~1 MB at most.
      segmentSize: options.segmentSize ?? Math.min(2000, Math.max(100, Math.floor(keepRuns / 10))),
      clock: options.clock,
      logger: options.logger,
    });
    this.#checkpointBytes = options.checkpointBytes ?? 16 * 1024 * 1024;
    this.#checkpointRuns = options.checkpointRuns ?? 20_000;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#group = new GroupCommit(() => this.#commitOnce(), options.logger);
  }

  // ---------------------------------------------------------------- opening and recovery

  async open(): Promise<LoadedState> {
    if (this.#opened) throw new Error('store already open');
    this.#opened = true;
    // State set in memory before opening (flags toggled before start) wins over what is loaded.
    const before = new Map(this.#jobs);
    this.#jobs.clear();
    if (this.#dir !== null) await this.#load(this.#dir);
    for (const [name, state] of before) this.#jobs.set(name, { ...this.#jobs.get(name), ...state });
    const runs = [...this.#live.values()].filter((r) => !isFinal(r.status)).sort((a, b) => (a.id < b.id ? -1 : 1));
    return { runs };
  }

  async #load(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'segments'), { recursive: true });
    this.#db = new Low<StateDoc>(new DurableJsonFile(path.join(dir, 'state.json'), { fsync: this.#fsync }), {
      version: 1,
      checkpoint: 0,
      openSegment: 1,
      segments: [],
      jobs: {},
      live: [],
      notifications: [],
    });
    try {
      await this.#db.read();
    } catch (err) {
      // Only outside damage gets here (the file is only ever replaced atomically): keep it aside.
      const aside = path.join(dir, `state.json.corrupt-${this.#clock.now()}`);
      this.#logger.error({ err, code: 'STORE_CORRUPT', aside }, 'state.json is unreadable; set aside, rebuilding from journals and segments');
      await import('node:fs/promises').then((fs) => fs.rename(path.join(dir, 'state.json'), aside));
    }
    const doc = this.#db.data;
    this.#checkpointN = doc.checkpoint;
    for (const [name, record] of Object.entries(doc.jobs)) this.#jobs.set(name, record);
    for (const run of doc.live) this.#live.set(run.id, run);
    this.#notifications.reset(doc.notifications);

    const entries = await readdir(dir);
    const journals = entries
      .map((f) => /^journal-(\d+)\.ndjson$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const n of journals) {
      const file = path.join(dir, `journal-${n}.ndjson`);
      if (n < doc.checkpoint) {
        await rm(file, { force: true }); // superseded by the checkpoint; left by a crash mid-cleanup
        continue;
      }
      const adapter = new NdjsonFile<JournalRecord>(file, { fsync: this.#fsync });
      const records = (await adapter.read()) ?? [];
      this.#reportDamage(file, adapter.last.badLines);
      for (const rec of records) this.#apply(rec);
    }

    // Segments: indexed ones come from the checkpoint; newer files are read.
    const folded = new Set(doc.foldSkip);
    await this.#history.load(doc.segments, doc.foldFrom, (run, afterMark) => {
      this.#live.delete(run.id); // the finished record wins over a journaled queued/running one
      // Finished after the checkpoint: its job's aggregates do not include it yet.
      if (afterMark && !folded.has(run.id)) foldFinished(this.job(run.job), run);
    });
    // A run the journal has as finished but no segment holds: its final state goes to history now.
    for (const run of [...this.#live.values()]) {
      if (isFinal(run.status)) this.#dirtyRuns.add(run);
    }
    await this.#checkpoint();
    if (this.#dirtyRuns.size > 0) await this.flush();
  }

  #apply(rec: JournalRecord): void {
    if ('r' in rec) this.#live.set(rec.r.id, rec.r);
    else if ('j' in rec) {
      let record = this.#jobs.get(rec.j);
      if (!record) this.#jobs.set(rec.j, (record = {}));
      if (rec.f.enabled === null) delete record.enabled;
      else record.enabled = rec.f.enabled;
      if (rec.f.lastFireAt === null) delete record.lastFireAt;
      else record.lastFireAt = rec.f.lastFireAt;
    } else if ('n' in rec) this.#notifications.push(rec.n);
  }

  #reportDamage(file: string, badLines: number): void {
    if (badLines > 0) {
      this.#logger.warn(
        { code: 'STORE_CORRUPT', file, badLines },
        'skipped unreadable lines (a torn tail from an interrupted write is expected after a crash)',
      );
    }
  }

  // ---------------------------------------------------------------- saving (group commit)

  saveRun(run: Run): Promise<void> {
    this.#live.set(run.id, run);
    this.#dirtyRuns.add(run);
    return this.#group.request();
  }

  job(name: string): JobState {
    let state = this.#jobs.get(name);
    if (!state) this.#jobs.set(name, (state = {}));
    return state;
  }

  jobs(): ReadonlyMap<string, JobState> {
    return this.#jobs;
  }

  saveJob(name: string): Promise<void> {
    this.#dirtyJobs.add(name);
    return this.#group.request();
  }

  saveNotification(notification: Notification): Promise<void> {
    this.#notifications.push(notification);
    this.#dirtyNotifications.push(notification);
    return this.#group.request();
  }

  async #commitOnce(): Promise<void> {
    const runs = [...this.#dirtyRuns];
    const jobs = [...this.#dirtyJobs];
    const notifications = this.#dirtyNotifications;
    this.#dirtyRuns.clear();
    this.#dirtyJobs.clear();
    this.#dirtyNotifications = [];

    const finished: Run[] = [];
    const disk = this.#dir !== null;
    const journalFile = this.#journal as AppendFile;
    const segmentFile = this.#history.file as AppendFile;
    for (const run of runs) {
      const final = isFinal(run.status);
      if (final) finished.push(run);
      if (!disk) continue;
      if (final) segmentFile.append(serializeRun(run) + '\n');
      else journalFile.append('{"r":' + serializeRun(run) + '}\n');
    }
    if (disk) {
      for (const name of jobs) {
        const r = this.#jobs.get(name);
        const f: JobFlags = { enabled: r?.enabled ?? null, lastFireAt: r?.lastFireAt ?? null };
        journalFile.append(JSON.stringify({ j: name, f }) + '\n');
      }
      for (const n of notifications) journalFile.append(JSON.stringify({ n }) + '\n');
      try {
        await Promise.all([journalFile.commit(), segmentFile.commit()]);
      } catch (err) {
        // Not durable: keep everything dirty for the next commit.
        for (const run of runs) this.#dirtyRuns.add(run);
        for (const name of jobs) this.#dirtyJobs.add(name);
        this.#dirtyNotifications.unshift(...notifications);
        throw err;
      }
    }
    this.#commits++;
    for (const run of finished) {
      // Only now, with the final record durable, does the run leave the live set.
      if (this.#live.get(run.id) === run) this.#live.delete(run.id);
    }
    await this.#history.add(finished);
    this.#finishedSinceCheckpoint += finished.length;
    // Checkpoints are few and cheap (they hold unfinished runs only): by journal size, or after
    // enough finished runs that a start-up never scans more than that many segment lines.
    if ((this.#journal && this.#journal.size > this.#checkpointBytes) || this.#finishedSinceCheckpoint >= this.#checkpointRuns) {
      await this.#checkpoint();
    }
  }

  /** Writes state.json from memory, then starts a new journal and drops the old ones. */
  async #checkpoint(): Promise<void> {
    if (this.#dir === null || !this.#db) return;
    const previous = this.#journal;
    const n = this.#checkpointN + 1;
    // Switch first: records saved from here on belong to the new journal.
    this.#journal = new AppendFile(path.join(this.#dir, `journal-${n}.ndjson`), { fsync: this.#fsync });
    await this.#journal.open();
    this.#db.data = {
      version: 1,
      checkpoint: n,
      openSegment: this.#history.position.segment,
      foldFrom: this.#history.position,
      // Finished in memory (and folded) but not yet written: do not fold them twice on load.
      foldSkip: [...this.#live.values()].filter((r) => isFinal(r.status)).map((r) => r.id),
      segments: this.#history.index(),
      jobs: Object.fromEntries(this.#jobs),
      live: [...this.#live.values()],
      notifications: this.#notifications.recent(),
    };
    await this.#db.write();
    this.#db.data.live = []; // do not pin the snapshot's array
    this.#checkpointN = n;
    this.#finishedSinceCheckpoint = 0;
    await previous?.remove();
    await this.#history.deleteExpired();
    // Journals older than n may survive a crash between the write above and here; #load drops them.
    for (const f of await readdir(this.#dir)) {
      const m = /^journal-(\d+)\.ndjson$/.exec(f);
      if (m && Number(m[1]) < n) await rm(path.join(this.#dir, f), { force: true });
    }
  }

  flush(): Promise<void> {
    return this.#group.flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush().catch(() => undefined);
    this.#closed = true;
    this.#group.close();
    if (this.#dir !== null) {
      while (this.#group.committing) await new Promise((r) => setImmediate(r));
      await this.#checkpoint();
      await this.#journal?.close();
      await this.#history.close();
    }
  }

  // ---------------------------------------------------------------- reading

  stats(): BackendStats {
    return {
      liveRuns: this.#live.size,
      historyRuns: this.#history.count(),
      segments: this.#history.segments(),
      commits: this.#commits,
    };
  }

  async getRun(id: string): Promise<Run | undefined> {
    const run = this.#live.get(id) ?? (await this.#history.find(id));
    return run && clone(run);
  }

  async listRuns(query: RunQuery): Promise<Page<Run>> {
    const { items, more } = await this.#history.page(this.#live.values(), query);
    const page: Page<Run> = { items: items.map(clone) };
    if (more && items.length > 0) page.next = items.at(-1)!.id;
    return page;
  }

  listNotifications(query: NotificationQuery): Page<Notification> {
    return this.#notifications.list(query);
  }
}
