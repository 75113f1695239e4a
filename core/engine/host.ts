import os from 'node:os';
import path from 'node:path';
import { type Clock, isoTime, systemClock } from '../contract/clock.js';
import { type Config, parseConfig } from '../contract/config.js';
import { type Duration, parseDuration } from '../contract/duration.js';
import { HostError } from '../contract/errors.js';
import type { AnyHostEvent, EventType, HostEvent } from '../contract/events.js';
import { createLogger, type Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import type { HandlerSource } from '../contract/plugin-source.js';
import type { Page, Run, RunQuery } from '../contract/run.js';
import type { RunLog } from '../contract/run-log.js';
import { checkRunQuery } from '../contract/run-query.js';
import type { BackendHealth, DamageReport } from '../contract/store-health.js';
import type { BulkFilter, BulkResult, ClusterView, HostState, JobView, Series, SeriesWindow, StaleJob, Stats } from '../contract/views.js';
import type { Bus, EventFilter, IteratorBounds, Listener } from './bus.js';
import type { Deliveries } from './deliveries.js';
import type { HostAlerts } from './host-alerts.js';
import { checkHostOptions, type HostOptions } from './host-options.js';
import type { WorkerStats } from './isolation.js';
import type { Pauses } from './pause.js';
import { installProcessHandlers } from './process-handlers.js';
import { stopHost } from './shutdown.js';
import { openBackend, type Service, startEngine, startServices } from './startup.js';
import type { PublishOptions, PublishResult, TriggerOptions, TriggerResult } from './triggers.js';
import { clusterView, describeHost, hostStats, liveJobView, staleJobs } from './views.js';
import type { WaitOptions } from './waits.js';
import { type HostParts, wireHost } from './wiring.js';

export type { HostOptions } from './host-options.js';
export type { PublishOptions, PublishResult, TriggerOptions, TriggerResult } from './triggers.js';
export type { WaitOptions } from './waits.js';

/** Creates a host (SPEC §10): `start()` it, register plugins, trigger jobs, listen to events. */
export function createHost(options: HostOptions = {}): Host {
  return new Host(checkHostOptions(options));
}

/**
 * The composition root: wires bus, backend, executor, registry, triggers and scheduler, and owns
 * the lifecycle. Where runs wait and are recorded is the backend's business (`contract/backend.ts`).
 */
const TRIGGER_OPTION_KEYS: ReadonlySet<string> = new Set(['params', 'delay', 'runAt', 'key', 'priority', 'source', 'audit']);

export class Host {
  /** This host's id (`cluster.id`, default `<hostname>:<pid>`): recorded on the runs it starts. */
  readonly id: string;
  readonly cwd: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly bus: Bus;
  #config: Config;
  #state: HostState = 'created';
  /** What the host is made of (`wiring.ts`). */
  readonly #p: HostParts;
  #stopping: Promise<void> | undefined;
  #url: string | null = null;
  #startedAt = '';
  /** Start/stop hooks of what plugs into the host (plugin loader, HTTP server). */
  readonly #services: Service[] = [];
  #servicesUp = false;
  /** The backend is closing (late in a stop): cancels are refused rather than half written. */
  #closing = false;
  readonly #options: HostOptions;
  /** Removes the process handlers (`HostOptions.processHandlers`) installed at start. */
  #unguard = (): void => undefined;

  constructor(options: HostOptions) {
    this.#options = options;
    this.cwd = options.cwd ?? process.cwd();
    this.#config = parseConfig(options.config ?? {});
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? createLogger();
    this.id = this.#config.cluster.id ?? `${os.hostname()}:${process.pid}`;
    this.#p = wireHost(
      {
        id: this.id,
        clock: this.clock,
        logger: this.logger,
        random: options.random ?? Math.random,
        dir: options.store === 'memory' ? null : this.resolvePath(this.#config.store.dir),
        state: () => this.#state,
        url: () => this.#url,
        config: () => this.#config,
        setConfig: (next) => void (this.#config = next),
        calls: this,
      },
      options,
    );
    this.bus = this.#p.bus;
    for (const plugin of options.plugins ?? []) this.register(plugin);
  }

  get state(): HostState {
    return this.#state;
  }

  get config(): Config {
    return this.#config;
  }

  /** A path from the config, resolved against the host's working directory. */
  resolvePath(p: string): string {
    return path.resolve(this.cwd, p);
  }

  /** The base URL of this host's API, as `GET /cluster` shows it to every host (the server sets it once it listens). */
  advertise(url: string | null): void {
    this.#url = url;
  }

  /** Plugs a service (loader, server) into start/stop; services start in order and stop in reverse. */
  use(service: Service): void {
    // Services start with the host: one plugged in later would never start (a server that never listens).
    if (this.#state !== 'created')
      throw new HostError(
        'ALREADY_STARTED',
        `cannot add the ${service.name} service to a host that is ${this.#state}: add it before host.start() (a server: useServer before the start, or createServer(host).listen() after it)`,
        {
          state: this.#state,
        },
      );
    this.#services.push(service);
  }

  // ------------------------------------------------------------------------ lifecycle

  /** Opens the backend (which recovers unfinished runs), starts dispatching and schedules, then services. */
  async start(): Promise<void> {
    if (this.#state !== 'created')
      throw new HostError('ALREADY_STARTED', `cannot start a host that is ${this.#state}: a host starts once (create another)`, { state: this.#state });
    this.#state = 'starting';
    this.#startedAt = isoTime(this.clock.now());
    await openBackend(this.#p, () => this.#describe());
    this.#state = 'running';
    this.#unguard = installProcessHandlers(this.#options.processHandlers, { logger: this.logger, flush: () => this.#p.backend.flush() });
    startEngine(this.#p);
    await startServices(this.#p, this.#services, () => this.stop({ reason: 'start failed', graceMs: 0 }), this.logger);
    this.#servicesUp = true;
    this.#warmWorkers();
  }

  /**
   * Graceful stop (SPEC §9): refuse new triggers, stop schedules, let running attempts finish
   * within the grace, abort the rest (back to queued while attempts remain), flush the store.
   * Ends within `graceMs + shutdown.margin` whatever hangs; rejects with STOP_INCOMPLETE (the host
   * is `stopped` all the same) when a part failed to close or the deadline passed.
   */
  stop(options: { reason?: string; graceMs?: Duration } = {}): Promise<void> {
    if (!this.#stopping) {
      let graceMs: number;
      try {
        graceMs = options.graceMs === undefined ? this.#config.shutdown.grace : parseDuration(options.graceMs, 'graceMs');
      } catch (err) {
        return Promise.reject(err); // INVALID_DURATION; the host goes on running
      }
      this.#stopping = this.#stop(options.reason ?? 'stop', graceMs);
    }
    return this.#stopping;
  }

  async #stop(reason: string, graceMs: number): Promise<void> {
    const opened = this.#state === 'running' || this.#state === 'starting';
    this.#state = 'stopping';
    try {
      await stopHost({
        parts: this.#p,
        services: this.#services,
        logger: this.logger,
        reason,
        graceMs,
        marginMs: this.#config.shutdown.margin,
        deliveryTimeoutMs: this.#config.notifications.timeout,
        opened,
        closing: () => void (this.#closing = true),
      });
    } finally {
      this.#state = 'stopped';
      this.#unguard();
    }
  }

  /** Resolves when everything recorded so far is durable in the store. */
  flush(): Promise<void> {
    return this.#p.backend.flush();
  }

  /** Pauses dispatch: triggers are still accepted and queued; running runs go on. */
  pause(): void {
    this.#p.backend.pause();
  }

  resume(): void {
    this.#p.backend.resume();
  }

  get paused(): boolean {
    return this.#p.backend.paused;
  }

  // ------------------------------------------------------------------------ jobs

  /**
   * Registers a plugin (or replaces the job of the same name: runs in flight finish on the old
   * version, queued ones start on the new). Throws a HostError naming the field when invalid.
   * `source` is the compiled plugin file a worker thread runs the handler from (the plugins
   * directory passes it); without one the handler runs inline.
   */
  register(plugin: unknown, options: { file?: string | null; source?: HandlerSource | null } = {}): JobView {
    const name = this.#p.registrations.register(plugin, options.file ?? null, options.source ?? null);
    this.#warmWorkers();
    return this.job(name)!;
  }

  /** Threads start once the host and its services are up (not holding up plugins and listen, issue 26), or with the first job that runs in one. */
  #warmWorkers(): void {
    if (this.#state === 'running' && this.#servicesUp) this.#p.executor.warm([...this.#p.jobs.entries()].map(([, { job }]) => job));
  }

  /** Removes a job: its schedule stops; runs in flight finish; queued runs wait for it to return. */
  unregister(name: string): boolean {
    return this.#p.registrations.unregister(name);
  }

  /** The file a job came from (null for code-registered jobs), or undefined for no such job. */
  fileOf(name: string): string | null | undefined {
    return this.#p.jobs.get(name)?.job.file;
  }

  /**
   * Applies a new config while running: jobs are resolved again (schedules re-armed, enabled
   * toggled), limits and queue weights applied. Returns the top-level keys that changed and
   * those that only take effect after a restart. Throws (and changes nothing) when invalid.
   */
  applyConfig(input: unknown): { changed: string[]; restartRequired: string[] } {
    const changes = this.#p.registrations.applyConfig(input);
    this.#warmWorkers();
    return changes;
  }

  /** Enables or disables a job at run time; the flag survives restarts. */
  async setEnabled(name: string, enabled: boolean): Promise<JobView> {
    // Once the store closes a flag would live in memory only, lost at the next start: refused, as a cancel is.
    if (this.#closing)
      throw new HostError('SHUTTING_DOWN', `the host is shutting down: job "${name}" was not ${enabled ? 'enabled' : 'disabled'}`, { job: name });
    await this.#p.registrations.setEnabled(name, enabled);
    return this.job(name)!;
  }

  enable(name: string): Promise<JobView> {
    return this.setEnabled(name, true);
  }

  disable(name: string): Promise<JobView> {
    return this.setEnabled(name, false);
  }

  // ------------------------------------------------------------------------ triggers

  /**
   * Triggers a job. Resolves once the run is durable in the store; rejects with JOB_NOT_FOUND,
   * INVALID_PARAMS, SKIPPED (`details.reason`) or SHUTTING_DOWN.
   */
  trigger(name: string, options: TriggerOptions = {}): Promise<TriggerResult> {
    // `null` from JavaScript is no options, as undefined is.
    const given = options ?? {};
    // A misspelt option (`dealy`) queued the run at once, silently; over HTTP the same key is a 400.
    // (A for-in, not Object.keys: no array per trigger, the hot path.)
    for (const key in given) {
      if (TRIGGER_OPTION_KEYS.has(key)) continue;
      const message = `unknown trigger option (trigger takes params, delay, runAt, key, priority)`;
      return Promise.reject(new HostError('INVALID_BODY', `${key}: ${message}`, { issues: [{ path: key, message }] }));
    }
    return this.#p.triggers.create(name, given, given.source ?? 'api');
  }

  /** Publishes an app event: every job with a matching `on` is triggered with the payload as params. */
  publish(event: string, payload?: unknown, options?: PublishOptions): Promise<PublishResult> {
    return this.#p.triggers.publish(event, payload, options);
  }

  /** Cancels a queued or running run, resolving once its `canceled` end is recorded; RUN_FINISHED if it already ended, CANCEL_PENDING (cluster) if its host does not answer. */
  async cancel(id: string): Promise<Run> {
    if (this.#closing) throw new HostError('SHUTTING_DOWN', 'the host is shutting down: the run was not canceled', { runId: id });
    const result = await this.#p.backend.cancel(id, 'canceled by request');
    if (!result) throw new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id });
    if (!result.canceled) throw new HostError('RUN_FINISHED', `run ${id} already ${result.run.status}`, { runId: id, status: result.run.status });
    return result.run;
  }

  /** Replays a failed or canceled run as a new run (source `retry`). */
  retry(id: string): Promise<TriggerResult> {
    return this.#p.triggers.retry(id);
  }

  // ------------------------------------------------------------------------ reads

  jobs(): JobView[] {
    const names = this.#p.jobs.names().sort();
    return names.map((name) => this.job(name)!);
  }

  job(name: string): JobView | undefined {
    const job = this.#p.jobs.get(name)?.job;
    return job && liveJobView(job, this.#state, this.#p.backend, this.#p.scheduler);
  }

  /** History, newest first, across segments; `next` is the cursor for `before`. */
  runs(query: RunQuery = {}): Promise<Page<Run>> {
    try {
      checkRunQuery(query);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#p.backend.listRuns(query);
  }

  run(id: string): Promise<Run | undefined> {
    return this.#p.backend.getRun(id);
  }

  /** A run and its log: the last 500 lines / 256 KiB its handler wrote through `ctx.log`, and how many earlier ones were cut. */
  runLog(id: string): Promise<{ run: Run; log: RunLog }> {
    return this.#p.insight.runLog(id);
  }

  /** Runs per bucket over a window (`1h`, `24h`, `7d`), for the host or one job; JOB_NOT_FOUND for a job neither registered nor ever run. */
  series(window: SeriesWindow, job?: string): Series {
    return this.#p.insight.series(window, job);
  }

  /** Replays every failed run (of a job, or all) that ended in the range and was not replayed yet; `dryRun` only counts. */
  retryFailed(filter: BulkFilter = {}): Promise<BulkResult> {
    return this.#p.insight.retryFailed(filter);
  }

  /** Cancels every run (of a job, or all) created in the range that is still waiting; `dryRun` only counts. */
  cancelQueued(filter: BulkFilter = {}): Promise<BulkResult> {
    return this.#p.insight.cancelQueued(filter);
  }

  /**
   * Resolves with the run once it is final. Rejects with RUN_NOT_FOUND, WAIT_TIMEOUT (`timeout` ms
   * passed), the signal's reason (`signal` aborted), or SHUTTING_DOWN (the host stopped first).
   */
  wait(id: string, options: WaitOptions = {}): Promise<Run> {
    return this.#p.waits.wait(id, options ?? {});
  }

  notifications(query: { limit?: number; before?: string; job?: string } = {}): Promise<Page<Notification>> {
    return this.#p.backend.listNotifications(query);
  }

  /** Delivered notifications: one notification, redeliver, destinations (no secrets), test messages, counts. */
  get deliveries(): Deliveries {
    return this.#p.deliveries;
  }

  /** The audit trail of changes asked of the API (SPEC §14), as durable as runs. */
  get audit() {
    return this.#p.audit;
  }

  /** Pause and resume of jobs and queues (SPEC §13), kept across restarts. */
  get pauses(): Pauses {
    return this.#p.pauses;
  }

  /** The host's degradations and stalls as the watchdog last saw them (`/ready`), and where others add theirs. */
  get conditions(): Pick<HostAlerts, 'active' | 'source'> {
    return this.#p.hostAlerts;
  }

  stats(): Stats {
    const jobs = [...this.#p.jobs.entries()].map(([, e]) => e.job);
    return hostStats(this.#state, jobs, this.#p.backend.jobStates(), this.#p.backend.depths(), this.#p.backend.stats(), this.bus.seq);
  }

  /** The store's condition (readiness, metrics): why it cannot write, if so; damage found in its files. */
  storeHealth(): BackendHealth {
    return this.#p.backend.health();
  }

  /** Acknowledges store damage reports (every unacknowledged one without `ids`): `/ready` stops listing them. */
  async ackStoreDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    const result = await this.#p.backend.ackDamage(ids);
    if (result.acknowledged.length > 0) this.logger.info({ ids: result.acknowledged.map((r) => r.id) }, 'store damage acknowledged');
    return result;
  }

  /**
   * The hosts sharing this host's backend, as they last announced themselves, and the jobs whose
   * definition differs between them (`drift`); on the local backend, this host alone.
   */
  cluster(): ClusterView {
    const self = { id: this.id, ...this.#describe(), lastSeen: isoTime(this.clock.now()), running: this.#p.backend.depths().running };
    return clusterView(this.#config.backend.kind, this.id, this.#p.backend.hosts() ?? [self]);
  }

  #describe(): ReturnType<typeof describeHost> {
    return describeHost(this.#p.jobs.entries(), this.#url, this.#startedAt || isoTime(this.clock.now()), Object.keys(this.#config.notifications.destinations));
  }

  /** The pool of worker threads handlers run in: its size, live threads, attempts in flight, threads replaced (by reason). */
  workerStats(): WorkerStats {
    return this.#p.executor.workerStats();
  }

  /** The heap in use of each worker thread, in bytes (benchmarks report it). */
  workerMemory(): Promise<number[]> {
    return this.#p.executor.workerMemory();
  }

  /** Whether the scheduler is armed (for readiness). */
  get schedulerRunning(): boolean {
    return this.#p.scheduler.running;
  }

  /**
   * Enabled scheduled jobs with no success within twice their period (for readiness). The period
   * is the gap between the job's next two fires; a job that never succeeded counts from when it
   * was registered in this process.
   */
  staleJobs(): StaleJob[] {
    return staleJobs(this.#p.jobs.entries(), (name) => this.#p.backend.jobState(name), this.clock.now());
  }

  /** Listens to one event type, or `'*'` for all. Returns the unsubscribe function. */
  on<T extends EventType>(type: T, listener: Listener<HostEvent<T>>): () => void;
  on(type: '*', listener: Listener<AnyHostEvent>): () => void;
  on(type: string, listener: Listener<never>): () => void {
    return this.bus.on(type as '*', listener as Listener<AnyHostEvent>);
  }

  /** Events as an async iterator, with the WebSocket's filters and `since` replay; a consumer too far behind gets EVENTS_OVERFLOW. */
  events(filter: EventFilter & IteratorBounds & { since?: number } = {}): AsyncIterableIterator<AnyHostEvent> {
    return this.bus.iterate(filter, filter.since, filter);
  }
}
