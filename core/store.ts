import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Low } from 'lowdb';
import { isoTime, type Clock } from './clock.js';
import { HostError } from './errors.js';
import { AppendFile, DurableJsonFile, NdjsonFile } from './files.js';
import { History, type SegmentInfo } from './history.js';
import type { Logger } from './logger.js';
import type { Notification } from './notify.js';
import { isFinal, serializeRun, type Run, type RunStatus } from './run.js';
import { DamageLog, type DamageFound } from './store-damage.js';
import { checkWith, journalLine, type DamageReport } from './store-records.js';

export type { DamageReport, LostLine } from './store-records.js';

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

/** Why the store cannot write (a full disk): set by a failed commit, cleared by the next that succeeds. */
export interface StoreWriteError {
  /** The errno code (`ENOSPC`, `EDQUOT`, `EIO`, ...), or `STORE_WRITE_FAILED` when there is none. */
  code: string;
  message: string;
  /** When commits started failing. */
  since: string;
  /** Seconds until the store tries again. */
  retryAfter: number;
}

/** The 503 a trigger gets while the store cannot write: no path in it, a time to retry. */
export function storeUnavailable(e: StoreWriteError, cause?: unknown): HostError {
  return new HostError(
    'STORE_WRITE_FAILED',
    `the store cannot write (${e.code}); nothing was acknowledged: retry after ${e.retryAfter}s`,
    { retryAfter: e.retryAfter, errno: e.code },
    cause === undefined ? undefined : { cause },
  );
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
  /** Set while commits fail (a full disk): new work should be refused until it clears by itself. */
  readonly writeError: StoreWriteError | null;
  /** Damage found in the store's files: every report still kept, and the damaged lines this process found. */
  damage(): { reports: DamageReport[]; damagedLines: number };
  /** Acknowledges damage reports (all unacknowledged ones without `ids`); durable when it resolves. */
  ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }>;
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
  /** Damage reports: unacknowledged ones, and acknowledged ones while their file may be read again. */
  damage?: unknown[];
}

type JobFlags = { enabled: boolean | null; lastFireAt: number | null };
type JournalRecord = { r: Run } | { j: string; f: JobFlags } | { n: Notification } | { d: DamageReport };

const checkJournalLine = checkWith(journalLine);
/** The longest wait between retries of a failed commit. */
const MAX_BACKOFF = 5000;

const NOTIFICATIONS_KEPT = 1000;
const DAY = 86_400_000;

const clone = <T>(value: T): T => structuredClone(value);

/** The errno code behind a failed write (`ENOSPC`), however deep the store wrapped it. */
function errnoOf(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'STORE_WRITE_FAILED';
}

/** The system's message for a failed write, without the file's path. */
function messageOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  const message = e instanceof Error ? e.message : String(e);
  // "ENOSPC: no space left on device, write" — the path, when there is one, follows a comma.
  return message.replace(/, (open|write|fsync|fdatasync|rename|mkdir|copyfile|ftruncate|close) .*$/, ', $1');
}

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
  /** Set once the files are loaded: damage found after that is journaled, not left to the load's checkpoint. */
  #loaded = false;
  #backoff = 50;
  #writeError: StoreWriteError | null = null;
  /** The number of the journal being appended to; ahead of #checkpointN after a failed checkpoint. */
  #journalN = 0;
  /** Journals switched away from, removed once a checkpoint that covers them is durable. */
  readonly #retired: AppendFile[] = [];
  /** After a failed checkpoint (a full disk), none is tried before this real time, so commits do not each try. */
  #checkpointRetryAt = 0;
  readonly #damage: DamageLog;
  #dirtyDamage: DamageReport[] = [];
  /** The background read of sealed history after a start (see History.scrub). */
  #scrub: Promise<void> | undefined;

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
      onDamage: (found) => this.#damaged(found, (id) => this.#live.has(id)),
    });
    this.#damage = new DamageLog({ dir: options.dir, clock: options.clock, logger: options.logger });
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
    if (this.#dir !== null) {
      await this.#load(this.#dir);
      this.#scrub = this.#history.scrub(() => this.#closed).catch((err: unknown) => {
        this.#logger.error({ err }, 'could not read the history back to check it for damage');
      });
    }
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
    this.#journalN = doc.checkpoint;
    for (const [name, record] of Object.entries(doc.jobs)) this.#jobs.set(name, record);
    for (const run of doc.live) this.#live.set(run.id, run);
    this.#notifications = doc.notifications;
    this.#damage.restore(doc.damage ?? []);

    const journalDamage: DamageFound[] = [];
    const finishedIds = new Set<string>();
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
      const adapter = new NdjsonFile<JournalRecord>(file, { fsync: this.#fsync, check: checkJournalLine });
      const records = (await adapter.read()) ?? [];
      const damaged = adapter.last.bad.filter((b) => !b.torn);
      const torn = adapter.last.bad.length - damaged.length;
      if (torn > 0) {
        this.#logger.warn({ code: 'STORE_CORRUPT', file, tornLines: torn }, 'dropped a torn tail (an interrupted write; expected after a crash, never acknowledged)');
      }
      // Reported once everything is loaded (to tell whether another record of each run loaded),
      // and before the checkpoint below deletes the journal.
      if (damaged.length > 0) journalDamage.push({ kind: 'journal', n, file, bad: damaged, missing: 0 });
      for (const rec of records) this.#apply(rec);
    }

    // Segments: indexed ones come from the checkpoint; newer files are read.
    const folded = new Set(doc.foldSkip);
    await this.#history.load(doc.segments, doc.foldFrom, (run, afterMark) => {
      if (journalDamage.length > 0) finishedIds.add(run.id);
      this.#live.delete(run.id); // the finished record wins over a journaled queued/running one
      // Finished after the checkpoint: its job's aggregates do not include it yet.
      if (afterMark && this.#fold && !folded.has(run.id)) {
        let record = this.#jobs.get(run.job);
        if (!record) this.#jobs.set(run.job, (record = {}));
        this.#fold(record, run);
      }
    });
    for (const found of journalDamage) await this.#damaged(found, (id) => this.#live.has(id) || finishedIds.has(id));
    // A run the journal has as finished but no segment holds: its final state goes to history now.
    for (const run of [...this.#live.values()]) {
      if (isFinal(run.status)) this.#dirtyRuns.add(run);
    }
    await this.#checkpoint();
    this.#loaded = true;
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
    else if ('d' in rec) this.#damage.apply(rec.d);
  }

  // ---------------------------------------------------------------- damage

  /** Damage found in a file (store-damage.ts): found while loading, the load's checkpoint keeps it; later, it is journaled. */
  async #damaged(found: DamageFound, loadedElsewhere: (runId: string) => boolean): Promise<void> {
    const report = await this.#damage.found(found, loadedElsewhere);
    if (report && this.#loaded) {
      this.#dirtyDamage.push(report);
      void this.#nextBatch();
    }
  }

  damage(): { reports: DamageReport[]; damagedLines: number } {
    return { reports: this.#damage.list(), damagedLines: this.#damage.damagedLines };
  }

  async ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    const { acknowledged, unknown, changed } = this.#damage.acknowledge(ids);
    this.#dirtyDamage.push(...changed);
    if (changed.length > 0 && this.#dir !== null) await this.#nextBatch();
    return { acknowledged, unknown };
  }

  get writeError(): StoreWriteError | null {
    return this.#writeError;
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
    try {
      while (this.#batch) {
        const batch = this.#batch;
        this.#batch = undefined;
        try {
          await this.#commitOnce();
          batch.resolve();
          this.#backoff = 50;
          if (this.#writeError) {
            this.#logger.info({ failingSince: this.#writeError.since }, 'the store can write again');
            this.#writeError = null;
          }
        } catch (err) {
          const retryAfter = Math.max(1, Math.ceil(this.#backoff / 1000));
          const code = errnoOf(err);
          if (this.#writeError === null) {
            this.#writeError = { code, message: messageOf(err), since: isoTime(this.#clock.now()), retryAfter };
            this.#logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'store commit failed; its saves are not acknowledged and are retried; new work is refused until a commit succeeds');
          } else {
            this.#writeError = { ...this.#writeError, code, message: messageOf(err), retryAfter };
            this.#logger.debug({ err, code: 'STORE_WRITE_FAILED' }, 'store commit failed again');
          }
          batch.reject(storeUnavailable(this.#writeError, err));
          if (this.#closed) break;
          // The dirty set was kept: retry it, backing off so a full disk is not a busy loop.
          void this.#nextBatch();
          await new Promise((r) => setTimeout(r, this.#backoff));
          this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF);
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
    const damage = this.#dirtyDamage;
    this.#dirtyRuns.clear();
    this.#dirtyJobs.clear();
    this.#dirtyNotifications = [];
    this.#dirtyDamage = [];

    let finished: Run[] = [];
    const journaled: Run[] = [];
    const disk = this.#dir !== null;
    const journalFile = this.#journal as AppendFile;
    const segmentFile = this.#history.file as AppendFile;
    for (const run of runs) {
      const final = isFinal(run.status);
      if (final) finished.push(run);
      else journaled.push(run);
      if (!disk) continue;
      if (final) segmentFile.append(serializeRun(run) + '\n');
      else journalFile.append('{"r":' + serializeRun(run) + '}\n');
    }
    let failure: unknown;
    if (disk) {
      for (const name of jobs) {
        const r = this.#jobs.get(name);
        const f: JobFlags = { enabled: r?.enabled ?? null, lastFireAt: r?.lastFireAt ?? null };
        journalFile.append(JSON.stringify({ j: name, f }) + '\n');
      }
      for (const n of notifications) journalFile.append(JSON.stringify({ n }) + '\n');
      for (const d of damage) journalFile.append(JSON.stringify({ d }) + '\n');
      // The two files fail apart (one may still have room): keep dirty only what did not reach
      // its file, so a retry never appends a finished run to its segment twice.
      const [journal, segment] = await Promise.allSettled([journalFile.commit(), segmentFile.commit()]);
      if (journal.status === 'rejected') {
        failure = journal.reason;
        for (const run of journaled) this.#dirtyRuns.add(run);
        for (const name of jobs) this.#dirtyJobs.add(name);
        this.#dirtyNotifications.unshift(...notifications);
        this.#dirtyDamage.unshift(...damage);
      }
      if (segment.status === 'rejected') {
        failure ??= segment.reason;
        for (const run of finished) this.#dirtyRuns.add(run);
        finished = [];
      }
    }
    if (failure === undefined) this.#commits++;
    for (const run of finished) {
      // Only now, with the final record durable, does the run leave the live set.
      if (this.#live.get(run.id) === run) this.#live.delete(run.id);
    }
    await this.#history.add(finished);
    this.#finishedSinceCheckpoint += finished.length;
    if (failure !== undefined) throw failure;
    // Checkpoints are few and cheap (they hold unfinished runs only): by journal size, or after
    // enough finished runs that a start-up never scans more than that many segment lines.
    if ((this.#journal && this.#journal.size > this.#checkpointBytes) || this.#finishedSinceCheckpoint >= this.#checkpointRuns) {
      if (Date.now() < this.#checkpointRetryAt) return;
      try {
        await this.#checkpoint();
      } catch (err) {
        // What this commit wrote is durable in the journal; the checkpoint only bounds the next
        // start's reading. Try again later, not on every commit.
        this.#checkpointRetryAt = Date.now() + MAX_BACKOFF;
        this.#logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'could not write a checkpoint; the journal keeps everything; retrying later');
      }
    }
  }

  /** Writes state.json from memory, then starts a new journal and drops the old ones. */
  async #checkpoint(): Promise<void> {
    if (this.#dir === null || !this.#db) return;
    const n = this.#checkpointN + 1;
    // Switch first: records saved from here on belong to the new journal. After a failed
    // checkpoint the switch is already done: journal n is kept, not opened a second time.
    if (this.#journalN !== n || !this.#journal) {
      const next = new AppendFile(path.join(this.#dir, `journal-${n}.ndjson`), { fsync: this.#fsync });
      await next.open();
      if (this.#journal) this.#retired.push(this.#journal);
      this.#journal = next;
      this.#journalN = n;
    }
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
      damage: this.#damage.kept(this.#history.oldestSegment),
    };
    try {
      await this.#db.write();
    } finally {
      this.#db.data.live = []; // do not pin the snapshot's array
    }
    this.#checkpointN = n;
    this.#finishedSinceCheckpoint = 0;
    for (const old of this.#retired.splice(0)) await old.remove();
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
      await this.#scrub;
      while (this.#committing) await new Promise((r) => setImmediate(r));
      try {
        await this.#checkpoint();
      } catch (err) {
        // A full disk at shutdown: the journal holds everything; the next start replays it.
        this.#logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'could not write the closing checkpoint; the next start replays the journal');
      }
      for (const old of this.#retired.splice(0)) await old.close();
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
