import path from 'node:path';
import type { JobState, NotificationQuery } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import { isFinal, type Page, type Run, type RunQuery } from '../contract/run.js';
import type { RunLog } from '../contract/run-log.js';
import type { DamageReport, StoreWriteError } from '../contract/store-health.js';
import type { BackendStats } from '../contract/views.js';
import { AuditLog } from './audit-log.js';
import { checkpointSource, type StoreParts } from './checkpoint-source.js';
import type { CheckpointSource } from './checkpoints.js';
import { Checkpoints } from './checkpoints.js';
import { type Batch, requeueUnwritten, writeBatch } from './commit-batch.js';
import { clone } from './copy.js';
import { type AppendFile, removeTempFiles } from './files.js';
import { GroupCommit, MAX_BACKOFF } from './group-commit.js';
import { History } from './history.js';
import { LiveRuns } from './live-runs.js';
import { loadFiles } from './load-files.js';
import type { StoreLock } from './lock.js';
import { NotificationLog } from './notification-log.js';
import { storeOpenError } from './open-error.js';
import { Pending } from './pending.js';
import { RunLogStore } from './run-logs.js';
import { type DamageFound, DamageLog } from './store-damage.js';
import { lockSupported } from './store-format.js';
import { WriteHealth } from './write-health.js';

/**
 * The run store. On disk (SPEC §4, §6):
 *
 *   state.json            checkpoint (a lowdb document): job records, unfinished runs, recent
 *                         notifications, the audit trail, the index of sealed segments
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

const DAY = 86_400_000;

export function createStore(options: StoreOptions): Store {
  return new Store(options);
}

/** The journal store (see the top of this file). */
export class Store {
  readonly #dir: string | null;
  readonly #fsync: boolean;
  readonly #checkpointBytes: number;
  readonly #checkpointRuns: number;
  readonly #clock: Clock;
  readonly #logger: Logger;

  readonly #checkpoints: Checkpoints | undefined;
  readonly #history: History;
  #finishedSinceCheckpoint = 0;

  /** Runs not yet durably finished: the source of recovery and of the newest history page. */
  readonly #live = new LiveRuns();
  readonly #jobs = new Map<string, JobState>();
  readonly #notifications = new NotificationLog();
  readonly #logs: RunLogStore;

  readonly #dirtyRuns = new Set<Run>();
  /** Flags, notifications, damage and audit records the next commit journals. */
  readonly #pending = new Pending();
  readonly #audit: AuditLog;
  readonly #group: GroupCommit;
  #commits = 0;
  #closed = false;
  #opened = false;
  /** Set once the files are loaded: damage found after that is journaled, not left to the load's checkpoint. */
  #loaded = false;
  readonly #writes: WriteHealth;
  /** After a failed checkpoint (a full disk), none is tried before this real time, so commits do not each try. */
  #checkpointRetryAt = 0;
  readonly #damage: DamageLog;
  /** The background read of sealed history after a start (see History.scrub). */
  #scrub: Promise<void> | undefined;
  /** Held from open to close: one writer per directory (lock.ts). */
  #lock: StoreLock | undefined;
  /** The in-memory parts a load fills and a checkpoint writes (checkpoint-source.ts). */
  readonly #parts: StoreParts;
  readonly #source: CheckpointSource;

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
    this.#logs = new RunLogStore({ dir: options.dir, fsync: this.#fsync, keepRuns, logger: options.logger });
    this.#audit = new AuditLog({ keepRuns, keepDays: options.keepDays ?? 30, clock: options.clock }, this.#pending, () => this.#group.request());
    this.#checkpointBytes = options.checkpointBytes ?? 16 * 1024 * 1024;
    this.#checkpointRuns = options.checkpointRuns ?? 20_000;
    this.#checkpoints = options.dir === null ? undefined : new Checkpoints(options.dir, this.#fsync);
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#writes = new WriteHealth(options.clock, options.logger);
    this.#group = new GroupCommit(() => this.#commitOnce(), this.#writes);
    this.#parts = {
      live: this.#live,
      dirtyRuns: this.#dirtyRuns,
      history: this.#history,
      jobs: this.#jobs,
      notifications: this.#notifications,
      damage: this.#damage,
      logs: this.#logs,
      audit: this.#audit,
    };
    this.#source = checkpointSource(this.#parts);
  }

  // ---------------------------------------------------------------- opening and recovery

  async open(): Promise<LoadedState> {
    if (this.#opened) throw new Error('store already open');
    this.#opened = true;
    // State set in memory before opening (flags toggled before start) wins over what is loaded.
    const before = new Map(this.#jobs);
    this.#jobs.clear();
    if (this.#dir !== null) {
      try {
        // Before reading anything: a second writer would append over the first one's lines; a store of a newer format is refused untouched.
        this.#lock = await lockSupported(this.#dir, { clock: this.#clock, logger: this.#logger });
      } catch (err) {
        throw storeOpenError(err, this.#dir);
      }
      try {
        await this.#removeTempFiles(this.#dir);
        await this.#load(this.#dir);
      } catch (err) {
        // Nothing closes a store that did not open: the files the load opened are closed here.
        await this.#closeFiles().catch((closeErr: unknown) => this.#logger.warn({ err: closeErr }, 'could not close the store files of a failed start'));
        await this.#releaseLock();
        throw storeOpenError(err, this.#dir);
      }
      this.#scrub = this.#history
        .scrub(() => this.#closed)
        .catch((err: unknown) => {
          this.#logger.error({ err }, 'could not read the history back to check it for damage');
        });
    }
    for (const [name, state] of before) this.#jobs.set(name, { ...this.#jobs.get(name), ...state });
    const runs = [...this.#live.values()].filter((r) => !isFinal(r.status)).sort((a, b) => (a.id < b.id ? -1 : 1));
    return { runs };
  }

  /** Temp files of writes that died with their process (a crash, a full disk): only the lock holder may remove them. */
  async #removeTempFiles(dir: string): Promise<void> {
    const { removed, failed } = await removeTempFiles(dir);
    if (removed.length > 0) this.#logger.info({ dir, files: removed }, 'removed temp files left by interrupted or failed writes');
    for (const { file, err } of failed) this.#logger.warn({ err, file: path.join(dir, file) }, 'could not remove a temp file left by an interrupted write');
  }

  async #load(dir: string): Promise<void> {
    await loadFiles(dir, {
      ...this.#parts,
      jobs: this.#jobs,
      dirtyRuns: this.#dirtyRuns,
      checkpoints: this.#checkpoints as Checkpoints,
      clock: this.#clock,
      fsync: this.#fsync,
      logger: this.#logger,
      job: (name) => this.job(name),
      damaged: (found, loadedElsewhere) => this.#damaged(found, loadedElsewhere),
    });
    await this.#checkpoint();
    this.#loaded = true;
    if (this.#dirtyRuns.size > 0) await this.flush();
  }

  // ---------------------------------------------------------------- damage

  /** Damage found in a file (store-damage.ts): found while loading, the load's checkpoint keeps it; later, it is journaled. */
  async #damaged(found: DamageFound, loadedElsewhere: (runId: string) => boolean): Promise<void> {
    const report = await this.#damage.found(found, loadedElsewhere);
    if (report && this.#loaded) {
      this.#pending.damage(report);
      void this.#group.request();
    }
  }

  /** Damage found in the store's files: every report still kept, and the damaged lines this process found. */
  damage(): { reports: DamageReport[]; damagedLines: number } {
    return { reports: this.#damage.list(), damagedLines: this.#damage.damagedLines };
  }

  /** Acknowledges damage reports (all unacknowledged ones without `ids`); durable when it resolves. */
  async ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    const { acknowledged, unknown, changed } = this.#damage.acknowledge(ids);
    this.#pending.damage(...changed);
    if (changed.length > 0 && this.#dir !== null) await this.#group.request();
    return { acknowledged, unknown };
  }

  /** Set while commits fail (a full disk): new work should be refused until it clears by itself. */
  get writeError(): StoreWriteError | null {
    return this.#writes.error;
  }

  // ---------------------------------------------------------------- saving (group commit)

  /** Records the run's current state; resolves once that state (or a newer one) is durable. */
  saveRun(run: Run): Promise<void> {
    // Saved again before the commit (queued, started, ended in one tick): live already (a commit clears dirty first).
    if (this.#dirtyRuns.has(run)) return this.#group.request();
    this.#live.set(run.id, run);
    this.#dirtyRuns.add(run);
    return this.#group.request();
  }

  /**
   * A job's state (created empty on first use; the store's own object, changed in place).
   * Aggregates go into the next checkpoint; flags are journaled by `saveJob`.
   */
  job(name: string): JobState {
    let state = this.#jobs.get(name);
    if (!state) this.#jobs.set(name, (state = {}));
    return state;
  }

  jobs(): ReadonlyMap<string, JobState> {
    return this.#jobs;
  }

  /** Journals a job's flags (`enabled`, `lastFireAt`); resolves once durable. */
  saveJob(name: string): Promise<void> {
    this.#pending.job(name);
    return this.#group.request();
  }

  /** Adds log lines to an unfinished run (see `Backend.appendLogs`); lines for a run no longer live are dropped. */
  appendLogs(runId: string, log: RunLog): void {
    if (!this.#live.has(runId) || this.#closed) return;
    this.#logs.append(runId, log);
    if (this.#dir !== null) void this.#group.request();
  }

  /** A run's kept log lines (see `Backend.getLogs`). */
  getLogs(runId: string): Promise<RunLog | undefined> {
    return this.#logs.get(runId, () => this.#history.segmentOf(runId));
  }

  /** Records a notification, or its new state (same id): durable when it resolves. */
  saveNotification(notification: Notification): Promise<void> {
    this.#notifications.push(notification);
    this.#pending.notification(notification);
    return this.#group.request();
  }

  async #commitOnce(): Promise<void> {
    const runs = [...this.#dirtyRuns];
    this.#dirtyRuns.clear();
    const taken = this.#pending.take((name) => this.#jobs.get(name));
    const batch: Batch = { runs, ...taken };
    const files =
      this.#dir === null
        ? null
        : { journal: this.#checkpoints?.journal as AppendFile, segment: this.#history.file as AppendFile, openSegment: this.#history.position.segment };
    const written = await writeBatch(batch, { files, logs: this.#logs });
    const { finished, failure } = requeueUnwritten(written, taken, { dirtyRuns: this.#dirtyRuns, putBack: (t) => this.#pending.putBack(t) });
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
    const journal = this.#checkpoints?.journal;
    if ((journal && journal.size > this.#checkpointBytes) || this.#finishedSinceCheckpoint >= this.#checkpointRuns) {
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

  /** Writes state.json from memory (after switching to a new journal), then drops what it covers. */
  async #checkpoint(): Promise<void> {
    if (!this.#checkpoints) return;
    await this.#checkpoints.write(this.#source);
    this.#finishedSinceCheckpoint = 0;
    await this.#history.deleteExpired();
    await this.#checkpoints.removeCovered();
  }

  /** The audit trail: an append is durable (journaled with this tick's commit) when it resolves. */
  get audit(): AuditLog {
    return this.#audit;
  }

  /** Resolves when everything saved so far is durable. */
  flush(): Promise<void> {
    return this.#group.flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush().catch(() => undefined);
    this.#closed = true;
    this.#group.close();
    if (this.#dir === null) return;
    try {
      await this.#scrub;
      while (this.#group.committing) await new Promise((r) => setImmediate(r));
      try {
        await this.#checkpoint();
      } catch (err) {
        // A full disk at shutdown: the journal holds everything; the next start replays it.
        this.#logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'could not write the closing checkpoint; the next start replays the journal');
      }
      await this.#closeFiles();
    } finally {
      // Only once nothing of this store writes any more.
      await this.#releaseLock();
    }
  }

  async #closeFiles(): Promise<void> {
    await this.#checkpoints?.close();
    await this.#history.close();
    await this.#logs.close();
  }

  async #releaseLock(): Promise<void> {
    const lock = this.#lock;
    this.#lock = undefined;
    await lock?.release();
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
    const { items, more } = await this.#history.page(this.#live.newest(query.before), query);
    const page: Page<Run> = { items: items.map(clone) };
    if (more && items.length > 0) page.next = items.at(-1)!.id;
    return page;
  }

  listNotifications(query: NotificationQuery): Page<Notification> {
    return this.#notifications.list(query);
  }

  /** The live record of a notification (the outbox updates it, then saves it again). */
  notification(id: string): Notification | undefined {
    return this.#notifications.get(id);
  }

  /** Notifications with open deliveries, oldest first. */
  openNotifications(): Notification[] {
    return this.#notifications.open();
  }
}
