import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Low } from 'lowdb';
import type { Clock } from './clock.js';
import { HostError } from './errors.js';
import { AppendFile, DurableJsonFile, NdjsonFile } from './files.js';
import type { Logger } from './logger.js';
import type { Notification } from './notify.js';
import { isFinal, serializeRun, type Run, type RunStatus } from './run.js';

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

interface SegmentInfo {
  n: number;
  count: number;
  minId: string;
  maxId: string;
  maxEndedAt: string;
  jobs: Record<string, number>;
  statuses: Partial<Record<RunStatus, number>>;
}

interface Segment {
  info: SegmentInfo;
  runs: Run[] | undefined;
}

interface StateDoc {
  version: 1;
  checkpoint: number;
  openSegment: number;
  /** Where the runs not yet folded into `jobs` start: a segment and a line in it. */
  foldFrom?: { segment: number; line: number };
  segments: SegmentInfo[];
  jobs: Record<string, JobRecord>;
  live: Run[];
  notifications: Notification[];
}

type JobFlags = { enabled: boolean | null; lastFireAt: number | null };
type JournalRecord = { r: Run } | { j: string; f: JobFlags } | { n: Notification };

const NOTIFICATIONS_KEPT = 1000;
const SEGMENT_CACHE = 4;
const DAY = 86_400_000;

function emptyInfo(n: number): SegmentInfo {
  return { n, count: 0, minId: '', maxId: '', maxEndedAt: '', jobs: {}, statuses: {} };
}

function addToInfo(info: SegmentInfo, run: Run): void {
  if (info.count === 0 || run.id < info.minId) info.minId = run.id;
  if (info.count === 0 || run.id > info.maxId) info.maxId = run.id;
  if (run.endedAt && run.endedAt > info.maxEndedAt) info.maxEndedAt = run.endedAt;
  info.count++;
  info.jobs[run.job] = (info.jobs[run.job] ?? 0) + 1;
  info.statuses[run.status] = (info.statuses[run.status] ?? 0) + 1;
}

const clone = <T>(value: T): T => structuredClone(value);

export function createStore(options: StoreOptions): Store {
  return new SegmentedStore(options);
}

class SegmentedStore implements Store {
  readonly #dir: string | null;
  readonly #fsync: boolean;
  readonly #keepRuns: number;
  readonly #keepDaysMs: number;
  readonly #segmentSize: number;
  readonly #checkpointBytes: number;
  readonly #checkpointRuns: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #fold: ((record: JobRecord, run: Run) => void) | undefined;

  #db: Low<StateDoc> | undefined;
  #checkpointN = 0;
  #journal: AppendFile | undefined;
  #segmentFile: AppendFile | undefined;
  #open: Segment = { info: emptyInfo(1), runs: [] };
  readonly #sealed: Segment[] = [];
  /** Segments dropped by retention, deleted at the next checkpoint. */
  readonly #expired: number[] = [];
  #finishedSinceCheckpoint = 0;
  readonly #cache: Segment[] = [];

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
    this.#keepRuns = options.keepRuns ?? 1000;
    this.#keepDaysMs = (options.keepDays ?? 30) * DAY;
    // Small enough that reading one back (GET /runs, a cache miss) parses ~1 MB at most.
    this.#segmentSize = options.segmentSize ?? Math.min(2000, Math.max(100, Math.floor(this.#keepRuns / 10)));
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

    // Segments: indexed ones come from the checkpoint; newer files are scanned.
    const indexed = new Map(doc.segments.map((s) => [s.n, s]));
    const files = (await readdir(path.join(dir, 'segments')))
      .map((f) => /^(\d+)\.ndjson$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const onDisk = new Set(files);
    for (const info of doc.segments) {
      if (onDisk.has(info.n)) this.#sealed.push({ info, runs: undefined });
      else this.#logger.error({ code: 'STORE_CORRUPT', segment: info.n }, 'a segment in the index is missing; its runs are gone from history');
    }
    let openN = Math.max(doc.openSegment, (files.at(-1) ?? 0), 1);
    const foldFrom = doc.foldFrom ?? { segment: Infinity, line: 0 };
    for (const n of files) {
      if (indexed.has(n)) continue;
      const file = this.#segmentPath(n);
      const adapter = new NdjsonFile<Run>(file, { fsync: this.#fsync });
      const runs = (await adapter.read()) ?? [];
      this.#reportDamage(file, adapter.last.badLines);
      const info = emptyInfo(n);
      for (const [line, run] of runs.entries()) {
        addToInfo(info, run);
        this.#live.delete(run.id); // the finished record wins over a journaled queued/running one
        // Finished after the checkpoint: its job's aggregates do not include it yet.
        if (this.#fold && (n > foldFrom.segment || (n === foldFrom.segment && line >= foldFrom.line))) {
          let record = this.#jobs.get(run.job);
          if (!record) this.#jobs.set(run.job, (record = {}));
          this.#fold(record, run);
        }
      }
      if (n === openN && runs.length < this.#segmentSize) {
        this.#open = { info, runs };
        this.#segmentFile = new AppendFile(file, { fsync: this.#fsync });
        await this.#segmentFile.open(adapter.last.goodBytes);
      } else if (runs.length > 0) {
        this.#sealed.push({ info, runs: undefined });
      } else {
        await rm(file, { force: true });
      }
    }
    this.#sealed.sort((a, b) => a.info.n - b.info.n);
    if (!this.#segmentFile) {
      openN = Math.max(openN, (this.#sealed.at(-1)?.info.n ?? 0) + 1);
      this.#open = { info: emptyInfo(openN), runs: [] };
      this.#segmentFile = new AppendFile(this.#segmentPath(openN), { fsync: this.#fsync });
      await this.#segmentFile.open();
    }
    // A run the journal has as finished but no segment holds: its final state goes to history now.
    for (const run of [...this.#live.values()]) {
      if (isFinal(run.status)) this.#dirtyRuns.add(run);
    }
    this.#applyRetention();
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

  #segmentPath(n: number): string {
    return path.join(this.#dir as string, 'segments', `${n}.ndjson`);
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
    const segmentFile = this.#segmentFile as AppendFile;
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
      this.#open.runs?.push(run);
      addToInfo(this.#open.info, run);
    }
    // Sealed after the batch: every run written to this segment's file is counted in its info.
    this.#finishedSinceCheckpoint += finished.length;
    if (this.#open.info.count >= this.#segmentSize) await this.#seal();
    // Checkpoints are few and cheap (they hold unfinished runs only): by journal size, or after
    // enough finished runs that a start-up never scans more than that many segment lines.
    if ((this.#journal && this.#journal.size > this.#checkpointBytes) || this.#finishedSinceCheckpoint >= this.#checkpointRuns) {
      await this.#checkpoint();
    }
  }

  async #seal(): Promise<void> {
    this.#sealed.push({ info: this.#open.info, runs: this.#open.runs });
    this.#remember(this.#sealed.at(-1)!);
    const n = this.#open.info.n + 1;
    this.#open = { info: emptyInfo(n), runs: [] };
    if (this.#dir !== null) {
      await this.#segmentFile?.close();
      this.#segmentFile = new AppendFile(this.#segmentPath(n), { fsync: this.#fsync });
      await this.#segmentFile.open();
    }
    this.#applyRetention();
  }

  /** Drops whole sealed segments beyond keepRuns (keeping at least keepRuns) and older than keepDays. */
  #applyRetention(): void {
    let total = this.#open.info.count + this.#sealed.reduce((sum, s) => sum + s.info.count, 0);
    const cutoff = this.#keepDaysMs > 0 ? new Date(this.#clock.now() - this.#keepDaysMs).toISOString() : '';
    while (this.#sealed.length > 0) {
      const oldest = this.#sealed[0]!;
      const tooMany = total - oldest.info.count >= this.#keepRuns;
      const tooOld = cutoff !== '' && oldest.info.maxEndedAt !== '' && oldest.info.maxEndedAt < cutoff;
      if (!tooMany && !tooOld) break;
      this.#sealed.shift();
      total -= oldest.info.count;
      const cached = this.#cache.indexOf(oldest);
      if (cached >= 0) this.#cache.splice(cached, 1);
      // The file goes once a checkpoint no longer lists it: the index never names a missing file.
      if (this.#dir !== null) this.#expired.push(oldest.info.n);
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
      openSegment: this.#open.info.n,
      foldFrom: { segment: this.#open.info.n, line: this.#open.info.count },
      segments: this.#sealed.map((s) => s.info),
      jobs: Object.fromEntries(this.#jobs),
      live: [...this.#live.values()],
      notifications: this.#notifications.slice(-NOTIFICATIONS_KEPT),
    };
    await this.#db.write();
    this.#db.data.live = []; // do not pin the snapshot's array
    this.#checkpointN = n;
    this.#finishedSinceCheckpoint = 0;
    await previous?.remove();
    for (const seg of this.#expired.splice(0)) {
      await rm(this.#segmentPath(seg), { force: true }).catch((err: unknown) =>
        this.#logger.warn({ err, segment: seg }, 'could not delete an expired segment'),
      );
    }
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
      await this.#segmentFile?.close();
    }
  }

  // ---------------------------------------------------------------- reading

  stats(): StoreStats {
    return {
      liveRuns: this.#live.size,
      historyRuns: this.#open.info.count + this.#sealed.reduce((sum, s) => sum + s.info.count, 0),
      segments: this.#sealed.length + 1,
      commits: this.#commits,
    };
  }

  async getRun(id: string): Promise<Run | undefined> {
    const live = this.#live.get(id);
    if (live) return clone(live);
    const found = this.#open.runs?.find((r) => r.id === id);
    if (found) return clone(found);
    for (let i = this.#sealed.length - 1; i >= 0; i--) {
      const seg = this.#sealed[i]!;
      if (id < seg.info.minId || id > seg.info.maxId) continue;
      const hit = (await this.#segmentRuns(seg)).find((r) => r.id === id);
      if (hit) return clone(hit);
    }
    return undefined;
  }

  async listRuns(query: RunQuery): Promise<Page<Run>> {
    const limit = Math.max(1, Math.min(query.limit ?? 50, 1000));
    const before = query.before;
    const match = (r: Run): boolean =>
      (before === undefined || r.id < before) &&
      (query.job === undefined || r.job === query.job) &&
      (query.status === undefined || r.status === query.status);

    // Keep the `limit + 1` newest matches; the extra one tells whether a next page exists.
    let best: Run[] = [];
    const consider = (runs: Iterable<Run>): void => {
      for (const r of runs) if (match(r)) best.push(r);
      if (best.length > limit + 1) {
        best.sort((a, b) => (a.id < b.id ? 1 : -1));
        best = best.slice(0, limit + 1);
      }
    };
    consider(this.#live.values());
    consider(this.#open.runs ?? []);
    // Newest segments first; stop once no older segment can hold a run newer than the page's last.
    const segments = [...this.#sealed].sort((a, b) => (a.info.maxId < b.info.maxId ? 1 : -1));
    for (const seg of segments) {
      if (best.length > limit) {
        best.sort((a, b) => (a.id < b.id ? 1 : -1));
        const floor = best[limit]!.id;
        if (seg.info.maxId < floor) break;
      }
      if (before !== undefined && seg.info.minId >= before) continue;
      if (query.job !== undefined && !seg.info.jobs[query.job]) continue;
      if (query.status !== undefined && !seg.info.statuses[query.status]) continue;
      consider(await this.#segmentRuns(seg));
    }
    best.sort((a, b) => (a.id < b.id ? 1 : -1));
    const items = best.slice(0, limit).map(clone);
    const page: Page<Run> = { items };
    if (best.length > limit && items.length > 0) page.next = items.at(-1)!.id;
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

  async #segmentRuns(seg: Segment): Promise<Run[]> {
    if (seg.runs) return seg.runs;
    const db = new Low<Run[]>(new NdjsonFile<Run>(this.#segmentPath(seg.info.n), { fsync: this.#fsync }), []);
    await db.read();
    seg.runs = db.data;
    this.#remember(seg);
    return seg.runs;
  }

  /** Keeps a few sealed segments parsed in memory (all of them when there is no disk). */
  #remember(seg: Segment): void {
    if (this.#dir === null) return;
    const i = this.#cache.indexOf(seg);
    if (i >= 0) this.#cache.splice(i, 1);
    this.#cache.push(seg);
    while (this.#cache.length > SEGMENT_CACHE) {
      const evicted = this.#cache.shift()!;
      evicted.runs = undefined;
    }
  }
}
