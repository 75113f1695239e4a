import { refusal } from '../contract/admission.js';
import type { AuditRecord, AuditStore } from '../contract/audit.js';
import type {
  AdmissionRules,
  Backend,
  BackendHooks,
  BackendOpened,
  Depths,
  HeldCounts,
  JobFlags,
  JobState,
  MissedWatch,
  NotificationQuery,
  Refusal,
  ScheduleFire,
} from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import { foldFinished } from '../contract/job-state.js';
import type { Logger } from '../contract/logger.js';
import { deliveryOpen, incidentOf, type Notification, type NotifyStatus, OPEN_BEFORE_MAX, opensIncident } from '../contract/notification.js';
import type { Page, Run, RunQuery } from '../contract/run.js';
import type { RunLog } from '../contract/run-log.js';
import { type BackendHealth, type DamageReport, storeUnavailable } from '../contract/store-health.js';
import type { BackendStats } from '../contract/views.js';
import { AlertMarks } from './alert-marks.js';
import { clone } from './copy.js';
import { Debouncer } from './debounce.js';
import { storeOpenError } from './open-error.js';
import { Outbox } from './outbox.js';
import { LocalPauses } from './pauses.js';
import { Runner } from './runner.js';
import { createStore, type Store, type StoreOptions } from './store.js';

/**
 * The `local` backend: runs wait in this process's queues (`Runner`) and are recorded in the
 * journal store on disk (`Store`), or in memory. One process owns a store directory.
 *
 * Its guarantees, on top of the `Backend` contract: an add is acknowledged once its record is
 * written with O_DSYNC (group-committed with every save of the same tick); admission is checked
 * and the run added in one synchronous step; a cancel is durable when it resolves.
 */

export interface LocalBackendOptions {
  /** Directory for the store; null keeps everything in memory (same behaviour, nothing durable). */
  dir: string | null;
  fsync: boolean;
  keepRuns: number;
  keepDays: number;
  /** Store tuning (segment size, checkpoint size), mostly for tests and benchmarks. */
  store?: Partial<Pick<StoreOptions, 'segmentSize' | 'checkpointBytes' | 'checkpointRuns' | 'fsync'>> | undefined;
  concurrency: number;
  queues: Readonly<Record<string, number>>;
  clock: Clock;
  /** Random source for retry jitter. */
  random: () => number;
  logger: Logger;
  /** This host's id, recorded on each run it starts (`run.host`). */
  hostId: string;
  /** Delivery attempts in flight at once (`notifications.concurrency`). */
  deliveryConcurrency?: number;
}

/** Creates the local backend (see `Backend`). */
export function createLocalBackend(options: LocalBackendOptions): Backend {
  return new LocalBackend(options);
}

/** What a run (and its attempt) that a crash cut short records: a new object each time, as each record owns its own. */
const interrupted = (): { code: string; message: string } => ({ code: 'INTERRUPTED', message: 'the host stopped while the attempt was running' });

class LocalBackend implements Backend {
  /** One host: its schedule fires need no agreement with others. */
  readonly shared = false;

  /** No other host to tell. */
  share(): void {}

  /** Alone: the engine describes itself. */
  hosts(): null {
    return null;
  }
  readonly #store: Store;
  readonly pauses: LocalPauses;
  readonly #runner: Runner;
  readonly #debounce: Debouncer;
  readonly #outbox: Outbox;
  readonly #marks: AlertMarks;
  /** Runs recovery found interrupted with no attempts left, ended by `recovered()`. */
  readonly #interrupted: Run[] = [];
  readonly #clock: Clock;
  readonly #logger: Logger;
  /** The store directory (null: in memory). */
  readonly #dir: string | null;
  #hooks: BackendHooks | undefined;
  #open = false;
  /** Set as `close()` begins: from then on a cancel is refused rather than written to a store that is closing. */
  #closing = false;
  #closed = false;

  constructor(options: LocalBackendOptions) {
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#dir = options.dir;
    this.#store = createStore({
      dir: options.dir,
      fsync: options.fsync,
      keepRuns: options.keepRuns,
      keepDays: options.keepDays,
      clock: options.clock,
      logger: options.logger,
      ...options.store,
    });
    this.#runner = new Runner({
      clock: options.clock,
      random: options.random,
      concurrency: options.concurrency,
      queues: { ...options.queues },
      hostId: options.hostId,
      save: (run) => this.#store.saveRun(run),
      settled: (run, outcome) => this.#settled(run, outcome),
      held: (job, queue) => this.pauses.holds(job, queue),
    });
    this.#debounce = new Debouncer(this.#runner);
    this.pauses = new LocalPauses({ dir: options.dir, fsync: options.fsync, logger: options.logger, resumed: () => this.#runner.dispatch.unparkAll() });
    this.#outbox = new Outbox({ clock: options.clock, logger: options.logger, concurrency: options.deliveryConcurrency ?? 16, store: this.#store });
    this.#marks = new AlertMarks({
      clock: options.clock,
      logger: options.logger,
      job: (name) => this.#store.job(name),
      save: (name) => this.#saveJob(name),
      live: (id) => this.#runner.get(id) !== undefined,
    });
  }

  async open(hooks: BackendHooks): Promise<BackendOpened> {
    this.#hooks = hooks;
    this.#runner.attach(hooks);
    this.#outbox.attach(hooks);
    const loaded = await this.#store.open();
    try {
      await this.pauses.load();
    } catch (err) {
      await this.#store.close().catch(() => undefined); // its lock too: the backend did not open
      throw storeOpenError(err, this.#dir ?? '.');
    }
    this.#open = true;
    this.#recover(loaded.runs);
    for (const n of this.#store.openNotifications()) this.#outbox.add(n);
    // One process owns the directory: ids need no node part beyond the random one.
    return {};
  }

  /** Waiting runs go back in as they were; runs found running get their attempt ended INTERRUPTED. */
  #recover(runs: Run[]): void {
    const observer = this.#hooks!.observer;
    const now = this.#clock.now();
    const iso = isoTime(now);
    for (const run of runs) {
      if (run.status !== 'running') {
        void this.#runner.add(run);
        // A run that never started and waits for its time may hold a debounce window: a trigger of its job and key merges into it, as before the stop.
        if (run.attempts.length === 0 && Date.parse(run.runAt) > now) this.#debounce.opened(run);
        continue;
      }
      const attempt = run.attempts.at(-1);
      const error = interrupted();
      if (attempt && attempt.endedAt === null) {
        attempt.endedAt = iso;
        attempt.error = error;
      }
      if (run.attempts.length >= run.maxAttempts) {
        // Ended once the plugins are in (`recovered`): its notification and its `after` children
        // need their jobs. Until then it stays `running` on disk, so a crash meanwhile finds it again.
        this.#interrupted.push(run);
        continue;
      }
      run.status = 'queued';
      if (run.source !== 'recovery') run.origin = run.source;
      run.source = 'recovery';
      run.runAt = iso;
      this.#logger.info({ job: run.job, runId: run.id }, 'run interrupted by a stop: queued again');
      void this.#runner.add(run);
      observer.queued(run, false);
    }
  }

  /**
   * Ends the runs recovery found interrupted with no attempts left: `failed`, after the runs their
   * end triggers (`after`) are added, so a crash in between finds the run running again and its
   * children, whose ids derive from it, once (as a crash between an end and its children does).
   */
  async recovered(): Promise<void> {
    const runs = this.#interrupted.splice(0);
    const hooks = this.#hooks!;
    const now = this.#clock.now();
    for (const run of runs) {
      run.status = 'failed';
      run.error = interrupted();
      run.endedAt = isoTime(now);
      run.durationMs = run.startedAt ? Math.max(0, now - Date.parse(run.startedAt)) : null;
      this.#logger.warn({ job: run.job, runId: run.id }, 'run interrupted with no attempts left: failed');
    }
    await Promise.all(runs.map((run) => hooks.after?.ended(run)));
    await Promise.all(runs.map((run) => this.#store.saveRun(run).catch(() => undefined)));
    for (const run of runs) {
      // Its children are in: the engine's own look for them finds them (they derive from its id).
      hooks.observer.finished(run);
      this.#settled(run, 'failed');
    }
  }

  /** Folds a final outcome into its job's state (no write of its own: the run's final record is the durable fact). */
  #settled(run: Run, outcome: NotifyStatus): void {
    if (outcome !== 'retrying') {
      foldFinished(this.#store.job(run.job), run);
      this.#marks.ended(run.job, run.id);
    }
    this.#hooks!.observer.settled(run, outcome);
  }

  start(): void {
    this.#runner.dispatch.start();
    this.#outbox.start();
  }

  pause(): void {
    this.#runner.dispatch.pause();
  }

  resume(): void {
    this.#runner.dispatch.resume();
  }

  get paused(): boolean {
    return this.#runner.dispatch.paused;
  }

  setLimits(concurrency: number, queues: Readonly<Record<string, number>>): void {
    this.#runner.dispatch.setLimits(concurrency, queues);
  }

  jobChanged(name: string): void {
    this.#runner.dispatch.jobChanged(name);
  }

  add(run: Run, rules: AdmissionRules, _fire?: ScheduleFire, audit?: AuditRecord): Promise<Refusal | undefined> {
    const now = this.#clock.now();
    const debounced = rules.debounceMs ? rules.enabled && this.#debounce.merge(run, rules, now) : undefined;
    if (debounced) {
      // The request's record joins the same commit as the merge (one fsync for both).
      if (audit) void this.#store.audit.append(audit);
      return debounced;
    }
    // A debounced job's key names its window, not a run to refuse a duplicate of.
    const refused = refusal(run.job, rules, this.#store.job(run.job), this.#runner, rules.debounceMs ? null : run.key, now);
    if (refused) return Promise.resolve(refused);
    if (rules.debounceMs) this.#debounce.opened(run);
    // A new run's runAt is either its creation time (now) or later: the clock has the number.
    const durable = this.#runner.add(run, run.runAt === run.createdAt ? now : Date.parse(run.runAt));
    this.#hooks!.observer.queued(run, run.runAt !== run.createdAt);
    // Appended in the same tick as the run's save: the request's record joins its commit.
    if (audit) void this.#store.audit.append(audit);
    // The store's batch promise resolves with nothing: "durable, not refused".
    return durable as Promise<undefined>;
  }

  async cancel(id: string, reason: string, options: { waitingOnly?: boolean } = {}): Promise<{ canceled: boolean; run: Run } | undefined> {
    // Refused before anything changes: a cancel the closing store cannot write is not claimed.
    if (this.#closing) throw new HostError('SHUTTING_DOWN', 'the host is shutting down: the run was not canceled', { runId: id });
    const live = this.#runner.get(id);
    if (live && options.waitingOnly && live.status === 'running') return { canceled: false, run: clone(live) };
    const run = this.#runner.cancel(id, reason);
    if (run) {
      // The save of this very state (the batch the runner's save joined): a failed write rejects here.
      await this.#store.saveRun(run);
      return { canceled: true, run: clone(run) };
    }
    const stored = await this.#store.getRun(id);
    return stored && { canceled: false, run: stored };
  }

  drain(graceMs: number): Promise<void> {
    return this.#runner.drain(graceMs);
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#outbox.close();
    if (this.#open && !this.#closed) await this.#store.close();
    this.#closed = true;
  }

  flush(): Promise<void> {
    return this.#store.flush();
  }

  async getRun(id: string): Promise<Run | undefined> {
    const live = this.#runner.get(id);
    if (live) return clone(live);
    return this.#store.getRun(id);
  }

  listRuns(query: RunQuery): Promise<Page<Run>> {
    return this.#store.listRuns(query);
  }

  appendLogs(runId: string, log: RunLog): void {
    this.#store.appendLogs(runId, log);
  }

  getLogs(runId: string): Promise<RunLog | undefined> {
    return this.#store.getLogs(runId);
  }

  jobState(name: string): Readonly<JobState> {
    return this.#store.job(name);
  }

  jobStates(): ReadonlyMap<string, Readonly<JobState>> {
    return this.#store.jobs();
  }

  setJobFlags(name: string, flags: JobFlags): Promise<void> {
    const state = this.#store.job(name);
    if (flags.enabled === null) delete state.enabled;
    else if (flags.enabled !== undefined) state.enabled = flags.enabled;
    if (flags.lastFireAt === null) delete state.lastFireAt;
    else if (flags.lastFireAt !== undefined) state.lastFireAt = flags.lastFireAt;
    return this.#saveJob(name);
  }

  /** Before open a job's state lives in memory and wins over what is loaded (see Store.open); after close it lives in memory only. */
  #saveJob(name: string): Promise<void> {
    return this.#open && !this.#closed ? this.#store.saveJob(name) : Promise.resolve();
  }

  async addNotification(notification: Notification): Promise<void> {
    try {
      await this.#store.saveNotification(notification);
    } catch (err) {
      // The store keeps the record and writes it once it can (a full disk): queue it then. A
      // host alert goes at once, from memory: it may be the news that the store cannot write.
      if (notification.rule === 'host') this.#outbox.add(notification);
      else this.#whenWritten(notification);
      throw err;
    }
    // Recorded first: a delivery is never attempted before it would survive a crash.
    this.#outbox.add(notification);
  }

  /** Queues `n`'s deliveries once the store has written it (retried every second until then, or until close). */
  #whenWritten(n: Notification): void {
    this.#clock.setTimer(1000, () => {
      if (this.#closed) return;
      this.#store.flush().then(
        () => this.#outbox.add(n),
        () => this.#whenWritten(n),
      );
    });
  }

  getNotification(id: string): Promise<Notification | undefined> {
    const n = this.#store.notification(id);
    return Promise.resolve(n && structuredClone(n));
  }

  async redeliver(id: string, destination?: string): Promise<Notification | undefined> {
    const n = this.#store.notification(id);
    if (!n || !this.#outbox.redeliver(n, destination)) return undefined;
    try {
      await this.#store.saveNotification(n);
    } finally {
      // Queued even when the save failed (the store keeps the record and writes it later): the
      // redeliver took the delivery's series, and nothing else would queue it.
      this.#outbox.add(n, destination);
    }
    for (const d of n.deliveries) if (destination === undefined || d.destination === destination) this.#hooks!.deliveryChanged(structuredClone(n), { ...d });
    return structuredClone(n);
  }

  openDeliveries(): number {
    return this.#outbox.size;
  }

  openBefore(destination: string, before: string, incident: string, opens?: boolean): Promise<Notification[]> {
    const found: Notification[] = [];
    // Not `break` at the first id past `before`: records are kept in the order they were saved,
    // which an id minted before an await may not follow.
    for (const n of this.#store.openNotifications()) {
      if (n.id >= before || incidentOf(n) !== incident || (opens !== undefined && opensIncident(n) !== opens)) continue;
      if (n.deliveries.some((d) => d.destination === destination && deliveryOpen(d))) found.push(structuredClone(n));
      if (found.length === OPEN_BEFORE_MAX) break;
    }
    return Promise.resolve(found);
  }

  settleDeliveries(notifications: readonly string[], signal: AbortSignal): Promise<void> {
    // The stop's own notifications are in the outbox already (queued when their record was durable).
    return this.#outbox.settle(notifications, signal);
  }

  throttle(key: string, ms: number, status: NotifyStatus): Promise<number | HeldCounts> {
    return this.#marks.throttle(key, ms, status);
  }

  takeHeld(key: string): Promise<HeldCounts> {
    return this.#marks.takeHeld(key);
  }

  takeEnded(key: string): Promise<HeldCounts | number> {
    return this.#marks.takeEnded(key);
  }

  claimSlow(job: string, runId: string): Promise<boolean> {
    return this.#marks.claimSlow(job, runId);
  }

  claimMissed(job: string, fireAt: number): Promise<boolean> {
    return this.#marks.claimMissed(job, fireAt);
  }

  keepMissedWatch(job: string, watch: MissedWatch, now: number): Promise<void> {
    return this.#marks.keepMissedWatch(job, watch, now);
  }

  dropMissedWatch(job: string, watch: MissedWatch): Promise<void> {
    return this.#marks.dropMissedWatch(job, watch);
  }

  missedWatches(job: string): Promise<MissedWatch[]> {
    return this.#marks.missedWatches(job);
  }

  listNotifications(query: NotificationQuery): Promise<Page<Notification>> {
    return Promise.resolve(this.#store.listNotifications(query));
  }

  activeRuns(job: string): { active: number; running: number; rateLimited?: number } {
    return { active: this.#runner.activeCount(job), running: this.#runner.runningCount(job), rateLimited: this.#runner.dispatch.rateLimited(job) };
  }

  depths(): Depths {
    return this.#runner.depths();
  }

  waiting(): number {
    return this.#runner.waiting();
  }

  stats(): BackendStats {
    return this.#store.stats();
  }

  unavailable(): HostError | null {
    const writeError = this.#store.writeError;
    return writeError === null ? null : storeUnavailable(writeError);
  }

  health(): BackendHealth {
    const { reports, damagedLines } = this.#store.damage();
    return {
      backend: { kind: 'local', available: true, target: null, error: null, since: null },
      writeError: this.#store.writeError,
      damage: reports,
      damagedLines,
    };
  }

  ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    return this.#store.ackDamage(ids);
  }

  /** The audit trail, journaled with the runs (`audit-log.ts`). */
  get audit(): AuditStore {
    return this.#store.audit;
  }
}
