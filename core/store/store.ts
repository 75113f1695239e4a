import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Low } from 'lowdb';
import type { Clock } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import { AppendFile, DurableJsonFile, NdjsonFile } from './files.js';
import { History, type SegmentInfo } from './history.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../engine/notify.js';
import { isFinal, serializeRun, type Run, type RunStatus } from '../contract/run.js';

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

/**
 * What the host keeps per job across restarts. Two kinds of field: flags (`enabled`,
 * `lastFireAt`), journaled when they change; and aggregates of finished runs (the rest), kept
 * in checkpoints and rebuilt on load by folding the runs finished since (`StoreOptions.fold`),
 * so finishing a run costs no extra write.
 */
export interface JobRecord {
  /** Set by enable/disable at run time; absent means "as the plugin and config say". */
  enabled?: boolean;
  /** The last schedule fire (ms), for catch-up. */
  lastFireAt?: number;
  lastSuccessAt?: string;
  lastRun?: { runId: string; status: RunStatus; at: string };
  counts?: Partial<Record<RunStatus, number>>;
  /** Durations (ms) of the most recent finished runs, for p50/p95. */
  durations?: number[];
}

export interface RunQuery {
  job?: string | undefined;
  status?: RunStatus | undefined;
  limit?: number | undefined;
  /** Cursor: only runs with an id below this one (ids sort by creation time). */
  before?: string | undefined;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

export interface LoadedState {
  /** Runs that had not finished (queued, delayed, running), oldest first. */
  runs: Run[];
  jobs: Map<string, JobRecord>;
}

export interface StoreStats {
  liveRuns: number;
  historyRuns: number;
  segments: number;
  commits: number;
}

export interface Store {
  open(): Promise<LoadedState>;
  /** Records the run's current state; resolves once that state (or a newer one) is durable. */
  saveRun(run: Run): Promise<void>;
  /** Journals a job's flags (`enabled`, `lastFireAt`); resolves once durable. */
  saveJob(name: string, record: JobRecord): Promise<void>;
  /** Lets the store see a job's record (its aggregates go into the next checkpoint). */
  trackJob(name: string, record: JobRecord): void;
  saveNotification(notification: Notification): Promise<void>;
  getRun(id: string): Promise<Run | undefined>;
  listRuns(query: RunQuery): Promise<Page<Run>>;
  listNotifications(query: { limit?: number | undefined; before?: string | undefined; job?: string | undefined }): Page<Notification>;
  /** Resolves when everything saved so far is durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
  stats(): StoreStats;
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
  /** Folds a finished run into its job's record: applied on load to runs finished since the checkpoint. */
  fold?: (record: JobRecord, run: Run) => void;
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
  jobs: Record<string, JobRecord>;
  live: Run[];
  notifications: Notification[];
}

type JobFlags = { enabled: boolean | null; lastFireAt: number | null };
type JournalRecord = { r: Run } | { j: string; f: JobFlags } | { n: Notification };

const NOTIFICATIONS_KEPT = 1000;
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
  readonly #fold: ((record: JobRecord, run: Run) => void) | undefined;

  #db: Low<StateDoc> | undefined;
  #checkpointN = 0;
  #journal: AppendFile | undefined;
  readonly #history: History;
  #finishedSinceCheckpoint = 0;

  /** Runs not yet durably finished: the source of recovery and of the newest history page. */
  readonly #live = new Map<string, Run>();
  readonly #jobs = new Map<string, JobRecord>();
  #notifications: Notification[] = [];

  readonly #dirtyRuns = new Set<Run>();
  readonly #dirtyJobs = new Set<string>();
  #dirtyNotifications: Notification[] = [];
  #batch: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;
  #committing = false;
  #scheduled = false;
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
    this.#fold = options.fold;
  }

  // ---------------------------------------------------------------- opening and recovery

  async open(): Promise<LoadedState> {
    if (this.#opened) throw new Error('store already open');
    this.#opened = true;
    if (this.#dir !== null) await this.#load(this.#dir);
    const runs = [...this.#live.values()].filter((r) => !isFinal(r.status)).sort((a, b) => (a.id < b.id ? -1 : 1));
    return { runs, jobs: new Map([...this.#jobs].map(([k, v]) => [k, clone(v)])) };
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
    this.#notifications = doc.notifications;

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
      if (afterMark && this.#fold && !folded.has(run.id)) {
        let record = this.#jobs.get(run.job);
        if (!record) this.#jobs.set(run.job, (record = {}));
        this.#fold(record, run);
      }
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
    } else if ('n' in rec) this.#pushNotification(rec.n);
  }

  #reportDamage(file: string, badLines: number): void {
    if (badLines > 0) {
      this.#logger.warn({ code: 'STORE_CORRUPT', file, badLines }, 'skipped unreadable lines (a torn tail from an interrupted write is expected after a crash)');
    }
  }

  // ---------------------------------------------------------------- saving (group commit)

  saveRun(run: Run): Promise<void> {
    this.#live.set(run.id, run);
    this.#dirtyRuns.add(run);
    return this.#nextBatch();
  }

  saveJob(name: string, record: JobRecord): Promise<void> {
    this.#jobs.set(name, record);
    this.#dirtyJobs.add(name);
    return this.#nextBatch();
  }

  trackJob(name: string, record: JobRecord): void {
    this.#jobs.set(name, record);
  }

  saveNotification(notification: Notification): Promise<void> {
    this.#pushNotification(notification);
    this.#dirtyNotifications.push(notification);
    return this.#nextBatch();
  }

  #pushNotification(n: Notification): void {
    this.#notifications.push(n);
    if (this.#notifications.length > NOTIFICATIONS_KEPT * 2) this.#notifications = this.#notifications.slice(-NOTIFICATIONS_KEPT);
  }

  /** The promise every save made before the next commit starts shares. */
  #nextBatch(): Promise<void> {
    if (this.#closed) return Promise.reject(new HostError('SHUTTING_DOWN', 'the store is closed'));
    if (!this.#batch) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A failed batch is reported to each waiter; an unobserved one must not crash the process.
      promise.catch(() => undefined);
      this.#batch = { promise, resolve, reject };
    }
    if (!this.#committing && !this.#scheduled) {
      this.#scheduled = true;
      // setImmediate, not a microtask: every trigger of this tick (and its I/O phase) joins the batch.
      setImmediate(() => void this.#commitLoop());
    }
    return this.#batch.promise;
  }

  async #commitLoop(): Promise<void> {
    this.#scheduled = false;
    if (this.#committing) return;
    this.#committing = true;
    let backoff = 50;
    try {
      while (this.#batch) {
        const batch = this.#batch;
        this.#batch = undefined;
        try {
          await this.#commitOnce();
          batch.resolve();
          backoff = 50;
        } catch (err) {
          this.#logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'store commit failed; its saves are not acknowledged and are retried');
          batch.reject(err);
          if (this.#closed) break;
          // The dirty set was kept: retry it, backing off so a full disk is not a busy loop.
          void this.#nextBatch();
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    } finally {
      this.#committing = false;
    }
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
      notifications: this.#notifications.slice(-NOTIFICATIONS_KEPT),
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
    if (!this.#batch && !this.#committing) return Promise.resolve();
    if (this.#batch) return this.#batch.promise;
    // A commit is in flight with nothing after it: wait for it with an empty batch.
    return this.#nextBatch();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush().catch(() => undefined);
    this.#closed = true;
    if (this.#dir !== null) {
      while (this.#committing) await new Promise((r) => setImmediate(r));
      await this.#checkpoint();
      await this.#journal?.close();
      await this.#history.close();
    }
  }

  // ---------------------------------------------------------------- reading

  stats(): StoreStats {
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

  listNotifications(query: { limit?: number | undefined; before?: string | undefined; job?: string | undefined }): Page<Notification> {
    const limit = Math.max(1, Math.min(query.limit ?? 50, NOTIFICATIONS_KEPT));
    const items: Notification[] = [];
    let more = false;
    for (let i = this.#notifications.length - 1; i >= 0; i--) {
      const n = this.#notifications[i]!;
      if (query.before !== undefined && n.id >= query.before) continue;
      if (query.job !== undefined && n.job !== query.job) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(clone(n));
    }
    const page: Page<Notification> = { items };
    if (more) page.next = items.at(-1)!.id;
    return page;
  }
}
