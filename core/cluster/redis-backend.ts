import type { AuditRecord } from '../contract/audit.js';
import type {
  AdmissionRules,
  Backend,
  BackendHooks,
  BackendOpened,
  Depths,
  JobFlags,
  JobState,
  MissedWatch,
  NotificationQuery,
  Refusal,
  ScheduleFire,
} from '../contract/backend.js';
import { type Clock, isoTime, settlesWithin, systemClock } from '../contract/clock.js';
import type { HostError } from '../contract/errors.js';
import { type AnyHostEvent, queuedData } from '../contract/events.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import type { PauseStore } from '../contract/pause.js';
import type { Page, Run, RunQuery } from '../contract/run.js';
import type { RunLog } from '../contract/run-log.js';
import type { BackendHealth, DamageReport, StoreWriteError } from '../contract/store-health.js';
import type { BackendStats, ClusterHost } from '../contract/views.js';
import { admit, type Retention } from './admission.js';
import { type CancelResult, cancelRun } from './cancel.js';
import { writeFlags } from './job-flags.js';
import { loadBullMQ } from './libraries.js';
import { withRateLimited } from './limits-rate.js';
import { dropWatch, keepWatch, readWatches } from './missed-watches.js';
import { claimSettings } from './settings.js';
import { leftBehind } from './settles.js';
import { onStreamEntries } from './wake-ups.js';
import { type RedisBackendOptions, type RedisParts, wireRedisBackend } from './wiring.js';

/**
 * The `redis` backend (cluster mode, SPEC §11): runs are BullMQ jobs on one Redis shared by every
 * host, each host both producer and worker. Guarantees, on top of the `Backend` contract: an add
 * is acknowledged once Redis has it (durable under Redis's `appendfsync`); admission and the add
 * are one MULTI; a job's `concurrency`, `once`, `cooldown`, `overlap` and dedup `key` hold across
 * hosts; a run whose host dies is taken over by another once its lock expires (BullMQ's stalled
 * check). It keeps time by the real clock (Redis and BullMQ do).
 */

export type { RedisBackendOptions } from './wiring.js';

/** Creates the redis backend (see `Backend`). */
export function createRedisBackend(options: RedisBackendOptions): Backend {
  return new RedisBackend(options);
}

/** A cancel of a running run waits this long for its end (written by the host running it), then answers CANCEL_PENDING. */
const CANCEL_WAIT_MS = 5000;
/** After a shutdown aborted the running attempts, their ends get this long to reach Redis. */
const ABORT_SETTLE_MS = 5000;
/**
 * At close, the parts that wait on Redis (the delivery worker handing its jobs back, the heartbeat
 * leaving the list, the job workers, the stream read) get this long together; then the
 * connections are ended whatever is still pending (SPEC §9: a stop is bounded).
 */
const CLOSE_MS = 5000;
/** The same, once Redis already let the aborted runs' ends wait ABORT_SETTLE_MS in vain: a stop is not made to wait twice as long. */
const CLOSE_AFTER_SILENCE_MS = 2000;

class RedisBackend implements Backend {
  /** Every host fires the schedules of its jobs; the add admits one run per fire time. */
  readonly shared = true;
  /** The runs `after` triggers are added in the MULTI that records their parent's end (after-chain.ts). */
  readonly chains = true;
  readonly #o: RedisBackendOptions;
  readonly #clock: Clock = systemClock;
  readonly #logger: Logger;
  readonly #retention: Retention;
  /** Its parts (`wiring.ts`); `jobs` are the jobs loaded on this host, a queue and a worker each. */
  readonly #p: RedisParts;
  readonly pauses: PauseStore;
  #flagsBeforeOpen = new Map<string, JobFlags>();
  #hooks: BackendHooks | undefined;
  #opened = false;
  #started = false;
  #closed = false;
  /** Set by a close that could not hand everything back to Redis (`health().writeError` from then on). */
  #leftBehind: StoreWriteError | null = null;
  /** The drain's aborted runs did not reach Redis in time. */
  #silent = false;
  #adds = 0;
  /** The run whose run.queued the add just put in the cluster stream (the engine emits it next, synchronously). */
  #announced: string | undefined;

  constructor(options: RedisBackendOptions) {
    this.#o = options;
    this.#logger = options.logger;
    this.#retention = { keepRuns: options.keepRuns, keepDays: options.keepDays };
    this.#p = wireRedisBackend(options, this.#clock, {
      hooks: () => this.#hooks,
      engine: () => this.#engine,
      started: () => this.#started,
      onEntries: (entries) => onStreamEntries(this.#p, this.#engine, entries),
    });
    this.pauses = this.#p.pauses;
  }

  get #engine(): BackendHooks {
    if (!this.#hooks) throw new Error('the redis backend has no engine attached (open it first)');
    return this.#hooks;
  }

  // ---------------------------------------------------------------- lifecycle

  async open(hooks: BackendHooks): Promise<BackendOpened> {
    await loadBullMQ();
    this.#hooks = hooks;
    await this.#p.connections.open();
    let idNode: string;
    let eventsSince: number;
    try {
      idNode = await claimSettings(this.#p.producer, this.#p.keys, this.#p.connections.target, this.#o.config);
      for (const [name, flags] of this.#flagsBeforeOpen) await writeFlags(this.#p, name, flags);
      this.#flagsBeforeOpen.clear();
      await this.#p.mirror.refresh();
      await this.#p.pauses.open();
      await this.#p.heartbeat.beat();
      await this.#p.reader.follow(this.#p.keys.clusterStream);
      // Once following from the stream's end: what other hosts told before is history to this host
      // (taken after the follow: a run at the edge is at worst counted twice, never left out).
      eventsSince = Date.now();
    } catch (err) {
      await this.#p.connections.close();
      throw this.#p.connections.setUpRefused(err);
    }
    this.#opened = true;
    await this.#p.jobs.reconcile();
    return { idNode, eventsSince };
  }

  start(): void {
    if (this.#started || !this.#opened) return;
    this.#started = true;
    this.#p.reader.start();
    this.#p.mirror.start();
    this.#p.pauses.start();
    this.#p.heartbeat.start();
    this.#p.dispatcher.start();
    for (const name of this.#p.jobs.names()) this.#p.dispatcher.markReady(name);
    this.#p.sweeper.start();
    this.#p.untold.start();
    this.#p.deliveries.start();
  }

  pause(): void {
    this.#p.dispatcher.pause();
  }

  resume(): void {
    this.#p.dispatcher.resume();
  }

  get paused(): boolean {
    return this.#p.dispatcher.paused;
  }

  setLimits(concurrency: number, queues: Readonly<Record<string, number>>): void {
    this.#p.dispatcher.setLimits(concurrency, queues);
  }

  /**
   * SPEC §9: takes no more runs (waiting ones stay in Redis for the other hosts), lets running
   * attempts finish for `graceMs`, then aborts the rest with SHUTDOWN: BullMQ puts each back to
   * wait at once (for any host) while attempts remain, else ends it failed.
   */
  async drain(graceMs: number): Promise<void> {
    this.#p.dispatcher.halt();
    this.#p.delayTimers.stop();
    if (await this.#p.dispatcher.idle(graceMs)) return;
    this.#p.attempts.abortAll();
    if (!(await this.#p.dispatcher.idle(ABORT_SETTLE_MS))) {
      const runs = this.#runningHere();
      this.#silent = true;
      // Only fetches Redis never answered (no run here): nothing was aborted, nothing to tell.
      if (runs.length === 0 && this.#p.dispatcher.running === 0) return;
      this.#logger.warn(
        { running: runs.length, runs, redis: this.#p.connections.target },
        'aborted runs did not reach Redis in time; another host takes them over once their locks expire',
      );
    }
  }

  /** Runs whose attempt here has not ended in Redis (its end not written yet). */
  #runningHere(): string[] {
    return [...this.#p.jobs.values()].flatMap((jq) => [...jq.running]);
  }

  /**
   * Bounded (CLOSE_MS, or CLOSE_AFTER_SILENCE_MS, then a short QUIT): what could not be handed back to Redis by then (runs
   * whose end was not written, deliveries in flight) is left to the other hosts' stalled-job
   * recovery, logged, and reported by `health().writeError`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#p.dispatcher.stop();
    this.#p.attempts.close();
    this.#p.delayTimers.stop();
    this.#p.sweeper.stop();
    this.#p.untold.stop();
    this.#p.relay.close();
    const closeMs = this.#silent ? CLOSE_AFTER_SILENCE_MS : CLOSE_MS;
    let deliveries: string[] = [];
    const parts = [
      this.#p.deliveries.close(closeMs).then((left) => void (deliveries = left)),
      this.#p.heartbeat.stop(),
      this.#p.mirror.stop(),
      this.#p.pauses.close(),
      this.#p.reader.close(),
      this.#p.jobs.close(),
    ];
    // Past the deadline the connections are ended under whatever still waits: it never settles then.
    const closed = await settlesWithin(this.#clock, closeMs + 500, Promise.allSettled(parts));
    if (!closed) this.#logger.debug({ redis: this.#p.connections.target }, 'parts of the redis backend did not close in time; ending its connections');
    await this.#p.connections.close();
    this.#leftBehind = leftBehind(this.#runningHere(), deliveries, isoTime(this.#clock.now()), this.#logger, this.#p.connections.target);
  }

  hosts(): readonly ClusterHost[] {
    return this.#hooks ? this.#p.heartbeat.hosts() : [];
  }

  share(event: AnyHostEvent): void {
    // The run.queued of a run this host added is in the stream already (see add, and after-chain.ts).
    if (event.type === 'run.queued' && event.data.runId === this.#announced) return void (this.#announced = undefined);
    if (event.type === 'run.queued' && this.#p.chained.delete(event.data.runId)) return;
    if (this.#opened) this.#p.relay.share(event);
  }

  /** Writes are acknowledged by Redis as they are made: nothing is held back to flush. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  // ---------------------------------------------------------------- jobs on this host

  jobChanged(name: string): void {
    this.#p.jobs.changed(name);
    if (this.#opened && !this.#closed) void this.#p.jobs.reconcile();
  }

  // ---------------------------------------------------------------- runs

  async add(run: Run, rules: AdmissionRules, fire?: ScheduleFire, audit?: AuditRecord): Promise<Refusal | undefined> {
    const delayed = run.runAt !== run.createdAt;
    // Its run.queued goes to the other hosts in the add's MULTI: before any host can start the run.
    const queued = { host: this.#o.hostId, data: JSON.stringify(queuedData(run, delayed)) };
    // Announced here once, by this add's answer or by the run's start on this host, whichever
    // comes first: this host's worker can take the run before the add's reply is back, and its
    // run.started must not come before its run.queued.
    // Not for a schedule fire: every host adds it under the same derived id, and the run this
    // host's worker takes may be another host's add of it.
    const { announcing } = this.#p;
    let announced = false;
    const announce = (): void => {
      if (announced) return;
      announced = true;
      announcing.delete(run.id);
      this.#adds++;
      this.#announced = run.id;
      this.#p.mirror.added(run, delayed);
      this.#engine.observer.queued(run, delayed);
    };
    if (fire === undefined) announcing.set(run.id, announce);
    let refused: Refusal | undefined;
    try {
      refused = await admit(this.#p.adds, this.#p.jobs.queueOf(run.job), run, rules, this.#p.keys, this.#p.connections, this.#retention, queued, fire);
      if (audit && (!refused || refused.reason === 'debounced')) await this.#p.audit.append(audit);
    } catch (err) {
      announcing.delete(run.id);
      throw err;
    }
    if (refused) {
      announcing.delete(run.id);
      return refused;
    }
    announce();
    // This host wakes without waiting for the stream to bring the news back.
    if (!delayed && this.#p.jobs.has(run.job)) this.#p.dispatcher.markReady(run.job);
    return undefined;
  }

  cancel(id: string, reason: string, options: { waitingOnly?: boolean } = {}): Promise<CancelResult> {
    return cancelRun(
      {
        producer: this.#p.producer,
        keys: this.#p.keys,
        connections: this.#p.connections,
        history: this.#p.history,
        hostId: this.#o.hostId,
        queue: (job) => this.#p.jobs.queueOf(job),
        keepMs: Math.max(1, this.#o.keepDays) * 86_400_000,
        waitMs: CANCEL_WAIT_MS,
        canceledWaiting: (run) => {
          this.#p.mirror.finished(run, false);
          this.#engine.observer.finished(run);
          this.#engine.observer.settled(run, 'canceled');
          void this.#hooks?.after?.ended(run);
        },
      },
      id,
      reason,
      options.waitingOnly === true,
    );
  }

  getRun(id: string): Promise<Run | undefined> {
    return this.#p.history.getRun(id);
  }

  appendLogs(runId: string, log: RunLog): void {
    if (this.#closed) return;
    this.#p.history
      .appendLogs(runId, log, Math.max(1, this.#o.keepDays) * 86_400_000)
      .catch((err: unknown) => this.#logger.warn({ err, runId }, 'could not keep the run log lines'));
  }

  getLogs(runId: string): Promise<RunLog | undefined> {
    return this.#p.history.getLogs(runId);
  }

  listRuns(query: RunQuery): Promise<Page<Run>> {
    return this.#p.history.listRuns(query);
  }

  // ---------------------------------------------------------------- job state

  jobState(name: string): Readonly<JobState> {
    return this.#p.mirror.state(name);
  }

  jobStates(): ReadonlyMap<string, Readonly<JobState>> {
    return this.#p.mirror.states();
  }

  async setJobFlags(name: string, flags: JobFlags): Promise<void> {
    this.#p.mirror.setFlags(name, flags);
    if (!this.#opened) {
      this.#flagsBeforeOpen.set(name, { ...this.#flagsBeforeOpen.get(name), ...flags });
      return;
    }
    if (this.#closed) return;
    try {
      await writeFlags(this.#p, name, flags);
    } catch (err) {
      throw this.#p.connections.toHostError(err);
    }
  }

  /** The audit trail of every host (`audit-records.ts`); storm control below is `storm.ts`. */
  get audit() {
    return this.#p.audit;
  }

  // ---------------------------------------------------------------- notifications (deliveries.ts)

  addNotification(notification: Notification): Promise<void> {
    return this.#p.deliveries.add(notification);
  }

  getNotification(id: string): Promise<Notification | undefined> {
    return this.#p.deliveries.get(id);
  }

  listNotifications(query: NotificationQuery): Promise<Page<Notification>> {
    return this.#p.deliveries.list(query);
  }

  redeliver(id: string, destination?: string): Promise<Notification | undefined> {
    return this.#p.deliveries.redeliver(id, destination);
  }

  openDeliveries(): number {
    return this.#p.deliveries.open;
  }

  openBefore(destination: string, before: string, incident: string, opens?: boolean): Promise<Notification[]> {
    return this.#p.deliveries.openBefore(destination, before, incident, opens);
  }

  settleDeliveries(notifications: readonly string[], signal: AbortSignal): Promise<void> {
    return this.#p.deliveries.settle(notifications, signal);
  }

  throttle(key: string, ms: number, status: string): Promise<number | Record<string, number>> {
    return this.#p.storm.throttle(key, ms, status);
  }

  takeHeld(key: string): Promise<Record<string, number>> {
    return this.#p.storm.takeHeld(key);
  }

  takeEnded(key: string): Promise<Record<string, number> | number> {
    return this.#p.storm.takeEnded(key);
  }

  /** The `slow` rule's claim: the first host to mark the run's job hash tells it (the mark goes with the run). */
  async claimSlow(job: string, runId: string): Promise<boolean> {
    return (await this.#p.commands.jhSlowMark(this.#p.keys.queue(job, runId))) === 1;
  }

  told(runId: string, done: boolean): void {
    this.#p.untold.told(runId, done);
  }

  /** The `missed` rule's claim: one host moves the job's `missedThrough` (it only grows); waits for Redis. */
  async claimMissed(job: string, fireAt: number): Promise<boolean> {
    const claimed = (await this.#p.commands.jhRaise(this.#p.keys.jobState(job), 'missedThrough', String(fireAt))) === 1;
    // Shown at once here (GET /jobs/:name's alert.missedThrough); other hosts read it at their next refresh.
    if (claimed) this.#p.mirror.missed(job, fireAt);
    return claimed;
  }

  /** Any host may write a job's watches (the one whose add a fire made): see missed-watches.ts. */
  keepMissedWatch(job: string, watch: MissedWatch, now: number): Promise<void> {
    return keepWatch(this.#p.producer, this.#p.keys.missedWatches(job), watch, now);
  }

  dropMissedWatch(job: string, watch: MissedWatch): Promise<void> {
    return dropWatch(this.#p.producer, this.#p.keys.missedWatches(job), watch);
  }

  missedWatches(job: string): Promise<MissedWatch[]> {
    return readWatches(this.#p.producer, this.#p.keys.missedWatches(job));
  }

  activeRuns(job: string): { active: number; running: number; rateLimited?: number } {
    return withRateLimited(this.#p.mirror.activeRuns(job), this.#p.jobs.get(job));
  }

  depths(): Depths {
    const depths = this.#p.mirror.depths();
    // Every queue of the config, as on one host (a queue no loaded job uses is there, empty), in its order.
    const queues: Record<string, number> = {};
    for (const q of this.#p.dispatcher.queueNames) queues[q] = depths.queues[q] ?? 0;
    return { ...depths, queues: { ...queues, ...depths.queues } };
  }

  waiting(): number {
    return this.#p.mirror.waiting();
  }

  stats(): BackendStats {
    return { liveRuns: this.#p.mirror.liveRuns, historyRuns: this.#p.mirror.indexSize, segments: 0, commits: this.#adds, ...this.#p.backlog.stats() };
  }

  unavailable(): HostError | null {
    return this.#p.connections.unavailable();
  }

  health(): BackendHealth {
    return {
      backend: this.#p.connections.reach(),
      warnings: this.#p.connections.warnings(),
      writeError: this.#leftBehind,
      damage: [],
      damagedLines: 0,
      faults: this.#p.faults(),
    };
  }

  /** Redis keeps no store files of jobhost's: there is no damage to acknowledge. */
  ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    return Promise.resolve({ acknowledged: [], unknown: [...(ids ?? [])] });
  }
}
