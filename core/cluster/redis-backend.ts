import { Queue } from 'bullmq';
import type { AdmissionRules, Backend, BackendHooks, BackendOpened, Depths, JobFlags, JobState, NotificationQuery, Refusal } from '../contract/backend.js';
import { type Clock, systemClock } from '../contract/clock.js';
import type { RedisBackendConfig } from '../contract/config.js';
import type { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import type { Page, Run, RunQuery } from '../contract/run.js';
import type { RunLog } from '../contract/run-log.js';
import type { BackendHealth, DamageReport } from '../contract/store-health.js';
import type { BackendStats } from '../contract/views.js';
import { admit, type Retention } from './admission.js';
import { Attempts } from './attempts.js';
import { type CancelResult, cancelRun } from './cancel.js';
import { Connections } from './connections.js';
import { DelayTimers } from './delay-timers.js';
import { Dispatcher } from './dispatcher.js';
import { History } from './history.js';
import { CANCELED_REASON, ClusterKeys } from './keys.js';
import { LoadedJobs } from './loaded-jobs.js';
import { Mirror } from './mirror.js';
import { defineScripts, type ScriptedRedis } from './scripts.js';
import { claimSettings, SETTINGS_TTL_MS } from './settings.js';
import { type StreamEntry, StreamReader } from './stream-reader.js';
import { Sweeper } from './sweep.js';

/**
 * The `redis` backend (cluster mode, SPEC §11): runs are BullMQ jobs on one Redis shared by every
 * host, each host both producer and worker. Guarantees, on top of the `Backend` contract: an add
 * is acknowledged once Redis has it (durable under Redis's `appendfsync`); admission and the add
 * are one MULTI; a job's `concurrency`, `once`, `cooldown`, `overlap` and dedup `key` hold across
 * hosts; a run whose host dies is taken over by another once its lock expires (BullMQ's stalled
 * check). It keeps time by the real clock (Redis and BullMQ do).
 */

export interface RedisBackendOptions {
  config: RedisBackendConfig;
  hostId: string;
  keepRuns: number;
  keepDays: number;
  concurrency: number;
  queues: Readonly<Record<string, number>>;
  /** Random source for retry jitter. */
  random: () => number;
  logger: Logger;
}

/** Creates the redis backend (see `Backend`). */
export function createRedisBackend(options: RedisBackendOptions): Backend {
  return new RedisBackend(options);
}

/** A cancel of a running run waits this long for its end before answering with the run as it is. */
const CANCEL_WAIT_MS = 5000;
/** After a shutdown aborted the running attempts, their ends get this long to reach Redis. */
const ABORT_SETTLE_MS = 5000;

class RedisBackend implements Backend {
  readonly #o: RedisBackendOptions;
  readonly #clock: Clock = systemClock;
  readonly #logger: Logger;
  readonly #keys: ClusterKeys;
  readonly #connections: Connections;
  readonly #producer: ScriptedRedis;
  readonly #commands: ScriptedRedis;
  readonly #mirror: Mirror;
  readonly #attempts: Attempts;
  readonly #dispatcher: Dispatcher;
  readonly #reader: StreamReader;
  readonly #history: History;
  readonly #retention: Retention;
  /** Jobs loaded on this host (a queue and a worker each). */
  readonly #jobs: LoadedJobs;
  /** Queues of jobs not loaded here, for triggers and cancels (no worker). */
  readonly #foreign = new Map<string, Queue>();
  readonly #delayTimers: DelayTimers;
  readonly #sweeper: Sweeper;
  #flagsBeforeOpen = new Map<string, JobFlags>();
  #hooks: BackendHooks | undefined;
  #opened = false;
  #started = false;
  #closed = false;
  #adds = 0;

  constructor(options: RedisBackendOptions) {
    this.#o = options;
    this.#logger = options.logger;
    this.#keys = new ClusterKeys(options.config.prefix);
    this.#connections = new Connections(options.config.url, `jobhost:${options.hostId}`, options.logger);
    this.#producer = defineScripts(this.#connections.producer);
    this.#commands = defineScripts(this.#connections.commands);
    this.#retention = { keepRuns: options.keepRuns, keepDays: options.keepDays };
    this.#mirror = new Mirror({
      redis: this.#producer,
      keys: this.#keys,
      clock: this.#clock,
      logger: this.#logger,
      settingsTtlMs: SETTINGS_TTL_MS,
      lockDuration: options.config.lockDuration,
      stalledInterval: options.config.stalledInterval,
      flagsChanged: (name) => this.#hooks?.flagsChanged(name),
      queueOf: (name) => this.#jobs.get(name)?.def.queue,
      canceledReason: CANCELED_REASON,
    });
    this.#attempts = new Attempts({
      hostId: options.hostId,
      keys: this.#keys,
      commands: this.#commands,
      clock: this.#clock,
      random: options.random,
      logger: this.#logger,
      hooks: () => this.#engine,
      mirror: this.#mirror,
    });
    this.#dispatcher = new Dispatcher(
      {
        clock: this.#clock,
        logger: this.#logger,
        concurrency: options.concurrency,
        weights: options.queues,
        job: (name) => {
          const jq = this.#jobs.get(name);
          return jq && !jq.removed ? jq : undefined;
        },
        run: (jq, job, token, fetchNext) => this.#attempts.run(jq, job, token, fetchNext),
        full: (full) => this.#reader.setBusy(full),
        sweep: () => {
          // Jobs whose set-up failed while Redis was out of reach are tried again here too.
          void this.#jobs.reconcile();
          for (const name of this.#jobs.names()) this.#dispatcher.markReady(name);
        },
      },
      options.hostId,
    );
    this.#reader = new StreamReader(this.#connections.reader, this.#producer, this.#logger, (entries) => this.#onEntries(entries));
    this.#history = new History(this.#producer, this.#commands, this.#keys, this.#connections);
    const { lockDuration, stalledInterval } = options.config;
    this.#jobs = new LoadedJobs({
      connections: this.#connections,
      producer: this.#producer,
      keys: this.#keys,
      settings: { prefix: this.#keys.prefix, hostId: options.hostId, lockDuration, stalledInterval },
      processor: this.#attempts.processor,
      clock: this.#clock,
      logger: this.#logger,
      definition: (name) => this.#engine.job(name),
      loaded: async (jq) => {
        await this.#reader.follow(jq.queue.keys['events']!);
        await this.#delayTimers.armNext(jq.name);
        if (this.#started) this.#dispatcher.markReady(jq.name);
      },
      unloaded: (jq) => {
        this.#dispatcher.forget(jq.name);
        this.#reader.unfollow(jq.queue.keys['events']!);
      },
    });
    this.#delayTimers = new DelayTimers(
      this.#clock,
      this.#producer,
      (name) => this.#jobs.get(name)?.queue.keys['delayed'],
      (name) => this.#dispatcher.markReady(name),
    );
    this.#sweeper = new Sweeper({
      clock: this.#clock,
      redis: this.#producer,
      keys: this.#keys,
      history: this.#history,
      hostId: options.hostId,
      keepDays: options.keepDays,
      logger: this.#logger,
      queues: () => [...this.#jobs.values()].map((jq) => jq.queue),
    });
  }

  get #engine(): BackendHooks {
    if (!this.#hooks) throw new Error('the redis backend has no engine attached (open it first)');
    return this.#hooks;
  }

  // ---------------------------------------------------------------- lifecycle

  async open(hooks: BackendHooks): Promise<BackendOpened> {
    this.#hooks = hooks;
    await this.#connections.open();
    let idNode: string;
    try {
      idNode = await claimSettings(this.#producer, this.#keys, this.#connections.target, this.#o.config);
      for (const [name, flags] of this.#flagsBeforeOpen) await this.#writeFlags(name, flags);
      this.#flagsBeforeOpen.clear();
      await this.#mirror.refresh();
      await this.#reader.follow(this.#keys.clusterStream);
    } catch (err) {
      await this.#connections.close();
      throw this.#connections.toHostError(err);
    }
    this.#opened = true;
    await this.#jobs.reconcile();
    return { idNode };
  }

  start(): void {
    if (this.#started || !this.#opened) return;
    this.#started = true;
    this.#reader.start();
    this.#mirror.start();
    this.#dispatcher.start();
    for (const name of this.#jobs.names()) this.#dispatcher.markReady(name);
    this.#sweeper.start();
  }

  pause(): void {
    this.#dispatcher.pause();
  }

  resume(): void {
    this.#dispatcher.resume();
  }

  get paused(): boolean {
    return this.#dispatcher.paused;
  }

  setLimits(concurrency: number, queues: Readonly<Record<string, number>>): void {
    this.#dispatcher.setLimits(concurrency, queues);
  }

  /**
   * SPEC §9: takes no more runs (waiting ones stay in Redis for the other hosts), lets running
   * attempts finish for `graceMs`, then aborts the rest with SHUTDOWN: BullMQ puts each back to
   * wait at once (for any host) while attempts remain, else ends it failed.
   */
  async drain(graceMs: number): Promise<void> {
    this.#dispatcher.halt();
    this.#delayTimers.stop();
    if (await this.#dispatcher.idle(graceMs)) return;
    this.#attempts.abortAll();
    if (!(await this.#dispatcher.idle(ABORT_SETTLE_MS))) {
      this.#logger.warn({ running: this.#attempts.size }, 'aborted runs did not reach Redis in time; another host takes them over once their locks expire');
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#dispatcher.stop();
    this.#attempts.close();
    this.#delayTimers.stop();
    this.#sweeper.stop();
    await this.#mirror.stop();
    await this.#reader.close();
    await this.#jobs.close();
    for (const q of this.#foreign.values()) await q.close().catch(() => undefined);
    await this.#connections.close();
  }

  /** Writes are acknowledged by Redis as they are made: nothing is held back to flush. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  // ---------------------------------------------------------------- jobs on this host

  jobChanged(name: string): void {
    this.#jobs.changed(name);
    if (this.#opened && !this.#closed) void this.#jobs.reconcile();
  }

  // ---------------------------------------------------------------- wake-ups

  #onEntries(entries: StreamEntry[]): void {
    const prefix = `${this.#keys.prefix}:`;
    for (const { stream, fields } of entries) {
      if (stream === this.#keys.clusterStream) {
        if (fields['event'] === 'cancel.request' && fields['runId']) {
          const job = fields['job'] ?? '';
          this.#attempts.cancel(this.#jobs.get(job), fields['runId'], fields['reason'] ?? 'canceled by request');
        }
        continue;
      }
      const name = stream.slice(prefix.length, -':events'.length);
      const event = fields['event'];
      if (event === 'delayed') this.#delayTimers.arm(name, Number(fields['delay']));
      // Anything but a start, a progress or a refused add may mean a run to take (added, back to
      // wait, a slot of a job at its limit freed).
      else if (event !== 'active' && event !== 'progress' && event !== 'duplicated' && event !== 'deduplicated') this.#dispatcher.markReady(name);
    }
  }

  // ---------------------------------------------------------------- runs

  #queue(job: string): Queue {
    const jq = this.#jobs.get(job);
    if (jq) return jq.queue;
    let q = this.#foreign.get(job);
    if (!q) {
      q = new Queue(job, { connection: this.#connections.producer, prefix: this.#keys.prefix });
      q.on('error', () => undefined);
      this.#foreign.set(job, q);
    }
    return q;
  }

  async add(run: Run, rules: AdmissionRules): Promise<Refusal | undefined> {
    const refused = await admit(this.#queue(run.job), run, rules, this.#keys, this.#connections, this.#retention);
    if (refused) return refused;
    this.#adds++;
    const delayed = run.runAt !== run.createdAt;
    this.#mirror.added(run, delayed);
    this.#engine.observer.queued(run, delayed);
    // This host wakes without waiting for the stream to bring the news back.
    if (!delayed && this.#jobs.has(run.job)) this.#dispatcher.markReady(run.job);
    return undefined;
  }

  cancel(id: string, reason: string, options: { waitingOnly?: boolean } = {}): Promise<CancelResult> {
    return cancelRun(
      {
        producer: this.#producer,
        keys: this.#keys,
        connections: this.#connections,
        history: this.#history,
        hostId: this.#o.hostId,
        queue: (job) => this.#queue(job),
        keepMs: Math.max(1, this.#o.keepDays) * 86_400_000,
        waitMs: CANCEL_WAIT_MS,
        canceledWaiting: (run) => {
          this.#mirror.finished(run, false);
          this.#engine.observer.finished(run);
          this.#engine.observer.settled(run, 'canceled');
        },
      },
      id,
      reason,
      options.waitingOnly === true,
    );
  }

  getRun(id: string): Promise<Run | undefined> {
    return this.#history.getRun(id);
  }

  appendLogs(runId: string, log: RunLog): void {
    if (this.#closed) return;
    this.#history
      .appendLogs(runId, log, Math.max(1, this.#o.keepDays) * 86_400_000)
      .catch((err: unknown) => this.#logger.warn({ err, runId }, 'could not keep the run log lines'));
  }

  getLogs(runId: string): Promise<RunLog | undefined> {
    return this.#history.getLogs(runId);
  }

  listRuns(query: RunQuery): Promise<Page<Run>> {
    return this.#history.listRuns(query);
  }

  // ---------------------------------------------------------------- job state

  jobState(name: string): Readonly<JobState> {
    return this.#mirror.state(name);
  }

  jobStates(): ReadonlyMap<string, Readonly<JobState>> {
    return this.#mirror.states();
  }

  async setJobFlags(name: string, flags: JobFlags): Promise<void> {
    this.#mirror.setFlags(name, flags);
    if (!this.#opened) {
      this.#flagsBeforeOpen.set(name, { ...this.#flagsBeforeOpen.get(name), ...flags });
      return;
    }
    if (this.#closed) return;
    try {
      await this.#writeFlags(name, flags);
    } catch (err) {
      throw this.#connections.toHostError(err);
    }
  }

  async #writeFlags(name: string, flags: JobFlags): Promise<void> {
    const key = this.#keys.jobState(name);
    const multi = this.#producer.multi();
    if (flags.enabled === null) multi.hdel(key, 'enabled');
    else if (flags.enabled !== undefined) multi.hset(key, 'enabled', flags.enabled ? '1' : '0');
    if (flags.lastFireAt === null) multi.hdel(key, 'lastFireAt');
    else if (flags.lastFireAt !== undefined) multi.hset(key, 'lastFireAt', String(flags.lastFireAt));
    multi.sadd(this.#keys.jobs, name);
    await multi.exec();
  }

  addNotification(notification: Notification): Promise<void> {
    return this.#history.addNotification(notification);
  }

  listNotifications(query: NotificationQuery): Promise<Page<Notification>> {
    return this.#history.listNotifications(query);
  }

  activeRuns(job: string): { active: number; running: number } {
    return this.#mirror.activeRuns(job);
  }

  depths(): Depths {
    return this.#mirror.depths();
  }

  stats(): BackendStats {
    return { liveRuns: this.#mirror.liveRuns, historyRuns: this.#mirror.indexSize, segments: 0, commits: this.#adds };
  }

  unavailable(): HostError | null {
    return this.#connections.unavailable();
  }

  health(): BackendHealth {
    return { backend: this.#connections.reach(), writeError: null, damage: [], damagedLines: 0 };
  }

  /** Redis keeps no store files of jobhost's: there is no damage to acknowledge. */
  ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    return Promise.resolve({ acknowledged: [], unknown: [...(ids ?? [])] });
  }
}
