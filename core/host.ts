import path from 'node:path';
import { Bus, type EventFilter, type Listener } from './bus.js';
import { isoTime as isoOf, systemClock, type Clock } from './clock.js';
import { parseConfig, type Config, type ConfigInput } from './config.js';
import { parseDuration, type Duration } from './duration.js';
import { HostError, isHostError } from './errors.js';
import type { AnyHostEvent, EventType, HostEvent, SkipReason } from './events.js';
import { changedFields, foldFinished, paramsJsonSchema, percentile, resolveJob, type EffectiveJob } from './jobs.js';
import { createLogger, type Logger } from './logger.js';
import { buildNotification, type Notification } from './notify.js';
import { parsePlugin, type JobSpec, type NotifyStatus, type ParamsResult, type PluginDefinition } from './plugin.js';
import { createIdGenerator, isFinal, type Run, type RunSource, type RunStatus } from './run.js';
import { Runner } from './runner.js';
import { scheduleText } from './schedule-text.js';
import { Scheduler } from './scheduler.js';
import { createStore, type JobRecord, type Page, type RunQuery, type Store, type StoreOptions } from './store.js';

export type HostState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface HostOptions {
  /** The config (same shape as config/jobhost.json); validated, defaults filled in. */
  config?: ConfigInput | undefined;
  /** Base for relative paths in the config (default: the working directory). */
  cwd?: string | undefined;
  /** `memory` keeps runs in memory only (nothing survives the process); default `disk`. */
  store?: 'disk' | 'memory' | undefined;
  /** Store tuning (segment size, checkpoint size), mostly for tests and benchmarks. */
  storeOptions?: Partial<Pick<StoreOptions, 'segmentSize' | 'checkpointBytes' | 'checkpointRuns' | 'fsync'>> | undefined;
  /** Plugins registered at creation, as if dropped into the plugins directory. */
  plugins?: ReadonlyArray<PluginDefinition<never> | PluginDefinition> | undefined;
  clock?: Clock | undefined;
  /** Random source for jitter (default Math.random). */
  random?: (() => number) | undefined;
  logger?: Logger | undefined;
}

export interface TriggerOptions {
  params?: unknown;
  /** Run no earlier than this long from now. */
  delay?: Duration | undefined;
  /** Run no earlier than this time (ISO string, Date or ms). */
  runAt?: string | number | Date | undefined;
  /** Dedup key: refused while a queued or running run of the job holds the same key. */
  key?: string | undefined;
  /** Lower runs first within a queue (default 0). */
  priority?: number | undefined;
  source?: RunSource | undefined;
}

export interface TriggerResult {
  runId: string;
}

export interface PublishResult {
  enqueued: string[];
  skipped: Array<{ job: string; reason: SkipReason }>;
  errors: Array<{ job: string; code: string; message: string }>;
}

/** A job as `GET /jobs` shows it (SPEC §6). */
export interface JobView {
  name: string;
  description: string;
  schedule: string | null;
  /** The schedule in words ("At 07:00", "Every 15 minutes"); null for trigger-only jobs. */
  scheduleText: string | null;
  timezone: string;
  enabled: boolean;
  file: string | null;
  nextRun: string | null;
  lastRun: { runId: string; status: RunStatus; at: string } | null;
  lastSuccessAt: string | null;
  counts: { succeeded: number; failed: number; canceled: number; queued: number; running: number };
  paramsSchema: unknown;
  paramDefaults: Record<string, unknown>;
  queue: string;
  concurrency: number;
  overlap: 'skip' | 'queue' | 'allow';
  retry: { attempts: number; backoff: string; delayMs: number; maxDelayMs: number; jitter: number };
  timeoutMs: number;
  cooldownMs: number;
  once: boolean;
  catchUp: boolean;
  on: Array<{ event: string; delayMs: number }>;
  notify: unknown;
}

export interface JobStats {
  count: number;
  succeeded: number;
  failed: number;
  canceled: number;
  successRate: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  lastRun: JobView['lastRun'];
}

export interface Stats {
  state: HostState;
  totals: { runs: number; succeeded: number; failed: number; canceled: number; queued: number; delayed: number; running: number };
  successRate: number | null;
  jobs: { total: number; enabled: number; running: number; scheduled: number };
  perJob: Record<string, JobStats>;
  queues: Record<string, number>;
  store: ReturnType<Store['stats']>;
  events: { seq: number };
}

/** A scheduled job overdue for a success (see `Host.staleJobs()`). */
export interface StaleJob {
  job: string;
  schedule: string;
  periodMs: number;
  lastSuccessAt: string | null;
}

interface JobEntry {
  job: EffectiveJob;
  registeredAt: number;
}

/** The validated params of a trigger, or INVALID_PARAMS listing every issue. */
function checkedParams(result: ParamsResult<unknown>): unknown {
  if (result.issues) {
    const issues = result.issues.map((i) => ({
      path: (i.path ?? []).map((p) => String(typeof p === 'object' && p !== null ? p.key : p)).join('.'),
      message: i.message,
    }));
    const first = issues[0];
    throw new HostError('INVALID_PARAMS', `params${first?.path ? '.' + first.path : ''}: ${first?.message ?? 'invalid'}`, { issues });
  }
  const params = result.value;
  if (params === undefined) return {};
  try {
    // Runs are stored as JSON: refuse what would not survive it, before it is acknowledged.
    JSON.stringify(params);
  } catch (err) {
    throw new HostError('INVALID_PARAMS', `params: not JSON-serializable (${(err as Error).message})`, { issues: [] });
  }
  return params;
}

/** Creates a host (SPEC §10): `start()` it, register plugins, trigger jobs, listen to events. */
export function createHost(options: HostOptions = {}): Host {
  return new Host(options);
}

/** The composition root: wires bus, store, runner and scheduler, and owns the trigger path. */
export class Host {
  readonly cwd: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly bus: Bus;
  #config: Config;
  #state: HostState = 'created';
  readonly #store: Store;
  readonly #runner: Runner;
  readonly #scheduler: Scheduler;
  readonly #random: () => number;
  readonly #newId: () => string;
  readonly #jobs = new Map<string, JobEntry>();
  readonly #records = new Map<string, JobRecord>();
  #subscriptions = new Map<string, Array<{ job: string; delayMs: number }>>();
  #stopping: Promise<void> | undefined;
  /** Start/stop hooks of what plugs into the host (plugin loader, HTTP server). */
  readonly #services: Array<{ name: string; start(): Promise<void>; stop(): Promise<void> }> = [];

  constructor(options: HostOptions) {
    this.cwd = options.cwd ?? process.cwd();
    this.#config = parseConfig(options.config ?? {});
    this.clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.logger = options.logger ?? createLogger();
    this.#newId = createIdGenerator(() => this.clock.now(), this.#random);
    this.bus = new Bus({ clock: this.clock, logger: this.logger, capacity: this.#config.events.buffer });
    this.#store = createStore({
      dir: options.store === 'memory' ? null : this.resolvePath(this.#config.store.dir),
      fsync: this.#config.store.fsync,
      keepRuns: this.#config.store.keepRuns,
      keepDays: this.#config.store.keepDays,
      clock: this.clock,
      logger: this.logger,
      fold: foldFinished,
      ...options.storeOptions,
    });
    this.#runner = new Runner({
      clock: this.clock,
      random: this.#random,
      bus: this.bus,
      store: this.#store,
      logger: this.logger,
      concurrency: this.#config.concurrency,
      queues: this.#config.queues,
      hooks: {
        job: (name) => this.#jobs.get(name)?.job,
        settled: (run, outcome) => this.#settled(run, outcome),
        reader: {
          runs: (query) => this.runs(query),
          run: (id) => this.run(id),
          stats: () => this.stats(),
        },
        publish: (event, payload, from) => {
          this.publish(event, payload).catch((err: unknown) =>
            this.logger.error({ err, event, runId: from.id }, 'ctx.emit failed'),
          );
        },
      },
    });
    this.#scheduler = new Scheduler({ clock: this.clock, logger: this.logger, fire: (job, at) => this.#fire(job, at) });
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

  /** Plugs a service (loader, server) into start/stop; services start in order and stop in reverse. */
  use(service: { name: string; start(): Promise<void>; stop(): Promise<void> }): void {
    this.#services.push(service);
  }

  // ------------------------------------------------------------------------ lifecycle

  /** Opens the store, recovers unfinished runs, starts dispatching and schedules, then services. */
  async start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`cannot start a host that is ${this.#state}`);
    this.#state = 'starting';
    const loaded = await this.#store.open();
    for (const [name, record] of loaded.jobs) {
      const existing = this.#records.get(name);
      this.#records.set(name, existing ? { ...record, ...existing } : record);
    }
    // Jobs registered before start were resolved without their stored flags: resolve again.
    for (const name of this.#jobs.keys()) this.#reresolve(name);
    this.#recover(loaded.runs);
    this.#state = 'running';
    this.#runner.start();
    this.#scheduler.start();
    for (const name of this.#jobs.keys()) this.#catchUp(name);
    try {
      for (const service of this.#services) await service.start();
    } catch (err) {
      // A service that cannot start (the port is taken) must not leave the engine running.
      await this.stop({ reason: 'start failed', graceMs: 0 });
      throw err;
    }
    this.bus.emit('host.started', { job: null, pid: process.pid, jobs: this.#jobs.size });
  }

  /**
   * Graceful stop (SPEC §9): refuse new triggers, stop schedules, let running attempts finish
   * within the grace, abort the rest (back to queued while attempts remain), flush the store.
   */
  stop(options: { reason?: string; graceMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.reason ?? 'stop', options.graceMs ?? this.#config.shutdown.grace);
    return this.#stopping;
  }

  async #stop(reason: string, graceMs: number): Promise<void> {
    const wasStarted = this.#state === 'running' || this.#state === 'starting';
    this.#state = 'stopping';
    this.bus.emit('host.stopping', { job: null, reason, graceMs });
    this.#scheduler.stop();
    const services = [...this.#services].reverse();
    // Services that take requests stop accepting first (they see `stopping`); they close last.
    await this.#runner.drain(graceMs);
    if (wasStarted) await this.#store.close();
    this.bus.emit('host.stopped', { job: null, reason });
    for (const service of services) {
      await service.stop().catch((err: unknown) => this.logger.error({ err, service: service.name }, 'service failed to stop'));
    }
    this.#state = 'stopped';
  }

  /** Resolves when everything recorded so far is durable in the store. */
  flush(): Promise<void> {
    return this.#store.flush();
  }

  /** Pauses dispatch: triggers are still accepted and queued; running runs go on. */
  pause(): void {
    this.#runner.pause();
  }

  resume(): void {
    this.#runner.resume();
  }

  get paused(): boolean {
    return this.#runner.paused;
  }

  #recover(runs: Run[]): void {
    const now = this.clock.now();
    const iso = isoOf(now);
    for (const run of runs) {
      if (run.status === 'running') {
        const attempt = run.attempts.at(-1);
        const error = { code: 'INTERRUPTED', message: 'the host stopped while the attempt was running' };
        if (attempt && attempt.endedAt === null) {
          attempt.endedAt = iso;
          attempt.error = error;
        }
        if (run.attempts.length < run.maxAttempts) {
          run.status = 'queued';
          if (run.source !== 'recovery') run.origin = run.source;
          run.source = 'recovery';
          run.runAt = iso;
        } else {
          run.status = 'failed';
          run.error = error;
          run.endedAt = iso;
          run.durationMs = run.startedAt ? Math.max(0, now - Date.parse(run.startedAt)) : null;
          void this.#store.saveRun(run);
          this.logger.warn({ job: run.job, runId: run.id }, 'run interrupted with no attempts left: failed');
          this.#settled(run, 'failed');
          continue;
        }
        this.logger.info({ job: run.job, runId: run.id }, 'run interrupted by a stop: queued again');
      }
      void this.#runner.add(run);
    }
  }

  // ------------------------------------------------------------------------ jobs

  /**
   * Registers a plugin (or replaces the job of the same name: runs in flight finish on the old
   * version, queued ones start on the new). Throws a HostError naming the field when invalid.
   */
  register(plugin: unknown, options: { file?: string | null } = {}): JobView {
    const spec = parsePlugin(plugin);
    const file = options.file ?? null;
    const existing = this.#jobs.get(spec.name);
    if (existing && existing.job.file !== null && file !== null && existing.job.file !== file) {
      throw new HostError(
        'PLUGIN_DUPLICATE',
        `name: job "${spec.name}" is already defined in ${existing.job.file}; ${file} declares it too`,
        { job: spec.name, files: [existing.job.file, file] },
      );
    }
    const job = this.#resolve(spec, file);
    this.#jobs.set(spec.name, { job, registeredAt: existing?.registeredAt ?? this.clock.now() });
    this.#jobsChanged(spec.name, job);
    const data = { job: spec.name, file, schedule: job.schedule?.label ?? null, enabled: job.enabled };
    if (existing) this.bus.emit('job.updated', { ...data, changed: changedFields(existing.job, job) });
    else this.bus.emit('job.registered', data);
    if (!existing && this.#state === 'running') this.#catchUp(spec.name);
    return this.#view(spec.name)!;
  }

  /** Removes a job: its schedule stops; runs in flight finish; queued runs wait for it to return. */
  unregister(name: string): boolean {
    const entry = this.#jobs.get(name);
    if (!entry) return false;
    this.#jobs.delete(name);
    this.#scheduler.set(name, null);
    this.#rebuildSubscriptions();
    this.bus.emit('job.removed', { job: name, file: entry.job.file });
    return true;
  }

  /** The file a job came from (null for code-registered jobs), or undefined for no such job. */
  fileOf(name: string): string | null | undefined {
    return this.#jobs.get(name)?.job.file;
  }

  #record(name: string): JobRecord {
    let record = this.#records.get(name);
    if (!record) this.#records.set(name, (record = {}));
    return record;
  }

  #resolve(spec: JobSpec, file: string | null): EffectiveJob {
    return resolveJob(spec, file, this.#config.jobs[spec.name], this.#config, this.#record(spec.name), (q) => this.#runner.hasQueue(q));
  }

  /** Resolves a registered job again (config or flags changed); returns what changed. */
  #reresolve(name: string): string[] {
    const entry = this.#jobs.get(name);
    if (!entry) return [];
    const job = this.#resolve(entry.job.spec, entry.job.file);
    const changed = changedFields(entry.job, job);
    entry.job = job;
    this.#jobsChanged(name, job);
    return changed;
  }

  #jobsChanged(name: string, job: EffectiveJob): void {
    this.#scheduler.set(name, job.enabled ? job.schedule : null);
    this.#rebuildSubscriptions();
    this.#runner.jobChanged(name);
  }

  #rebuildSubscriptions(): void {
    const subs = new Map<string, Array<{ job: string; delayMs: number }>>();
    for (const { job } of this.#jobs.values()) {
      if (!job.enabled) continue;
      for (const on of job.on) {
        const list = subs.get(on.event) ?? [];
        list.push({ job: job.name, delayMs: on.delayMs });
        subs.set(on.event, list);
      }
    }
    this.#subscriptions = subs;
  }

  /**
   * Applies a new config while running: jobs are resolved again (schedules re-armed, enabled
   * toggled), limits and queue weights applied. Returns the top-level keys that changed and
   * those that only take effect after a restart. Throws (and changes nothing) when invalid.
   */
  applyConfig(input: unknown): { changed: string[]; restartRequired: string[] } {
    const next = parseConfig(input);
    const previous = this.#config;
    // Check every job against the new config before touching anything: all or nothing.
    for (const { job } of this.#jobs.values()) {
      resolveJob(job.spec, job.file, next.jobs[job.name], next, this.#record(job.name), (q) => q in next.queues);
    }
    const changed: string[] = [];
    for (const key of Object.keys(next) as Array<keyof Config>) {
      if (key === 'jobs') {
        const names = new Set([...Object.keys(previous.jobs), ...Object.keys(next.jobs)]);
        for (const name of names) {
          if (JSON.stringify(previous.jobs[name]) !== JSON.stringify(next.jobs[name])) changed.push(`jobs.${name}`);
        }
      } else if (JSON.stringify(previous[key]) !== JSON.stringify(next[key])) {
        changed.push(key);
      }
    }
    const restartRequired = changed.filter((k) => k === 'server' || k === 'store' || k === 'plugins' || k === 'events');
    // An enabled flag edited in the config is the newest word on it: it replaces a run-time toggle.
    for (const name of Object.keys(next.jobs)) {
      if (previous.jobs[name]?.enabled !== next.jobs[name]?.enabled && next.jobs[name]?.enabled !== undefined) {
        const record = this.#record(name);
        if (record.enabled !== undefined) {
          delete record.enabled;
          if (this.#state === 'running') void this.#store.saveJob(name, record);
        }
      }
    }
    this.#config = next;
    this.#runner.setLimits(next.concurrency, next.queues);
    for (const name of this.#jobs.keys()) {
      const was = this.#jobs.get(name)!.job.enabled;
      const fields = this.#reresolve(name);
      const job = this.#jobs.get(name)!.job;
      if (fields.length > 0) {
        this.bus.emit('job.updated', { job: name, file: job.file, schedule: job.schedule?.label ?? null, enabled: job.enabled, changed: fields });
      }
      if (was !== job.enabled) this.bus.emit(job.enabled ? 'job.enabled' : 'job.disabled', { job: name });
    }
    for (const name of Object.keys(next.jobs)) {
      if (!this.#jobs.has(name)) this.logger.warn({ job: name }, `config has jobs.${name} but no plugin defines that job (yet)`);
    }
    return { changed, restartRequired };
  }

  /** Enables or disables a job at run time; the flag survives restarts. */
  async setEnabled(name: string, enabled: boolean): Promise<JobView> {
    const entry = this.#jobs.get(name);
    if (!entry) throw new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
    const record = this.#record(name);
    const was = entry.job.enabled;
    record.enabled = enabled;
    this.#reresolve(name);
    if (this.#state === 'running') await this.#store.saveJob(name, record);
    if (was !== enabled) this.bus.emit(enabled ? 'job.enabled' : 'job.disabled', { job: name });
    return this.#view(name)!;
  }

  enable(name: string): Promise<JobView> {
    return this.setEnabled(name, true);
  }

  disable(name: string): Promise<JobView> {
    return this.setEnabled(name, false);
  }

  // ------------------------------------------------------------------------ triggers

  #acceptingWork(): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') throw new HostError('SHUTTING_DOWN', 'the host is shutting down');
    if (this.#state !== 'running') throw new HostError('NOT_STARTED', 'the host has not started');
  }

  /**
   * Triggers a job. Resolves once the run is durable in the store; rejects with JOB_NOT_FOUND,
   * INVALID_PARAMS, SKIPPED (`details.reason`) or SHUTTING_DOWN.
   */
  async trigger(name: string, options: TriggerOptions = {}): Promise<TriggerResult> {
    const prepared = this.#newRun(name, options, options.source ?? 'api');
    const run = prepared instanceof Promise ? await prepared : prepared;
    await this.#enqueue(run);
    return { runId: run.id };
  }

  /** Hands the run to the runner and announces it; the promise is "the run is durable". */
  #enqueue(run: Run): Promise<void> {
    const durable = this.#runner.add(run);
    this.bus.emit('run.queued', {
      job: run.job,
      runId: run.id,
      source: run.source,
      queue: run.queue,
      priority: run.priority,
      key: run.key,
      runAt: run.runAt,
      delayed: run.runAt !== run.createdAt,
    });
    return durable;
  }

  /** Validates a trigger and builds its run; a promise only when the params schema is async. */
  #newRun(name: string, options: TriggerOptions, source: RunSource, extra?: Partial<Run>): Run | Promise<Run> {
    this.#acceptingWork();
    const entry = this.#jobs.get(name);
    if (!entry) throw new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
    const params = this.#validateParams(entry.job, options.params);
    if (params instanceof Promise) return params.then((p) => this.#buildRun(entry.job, p, options, source, extra));
    return this.#buildRun(entry.job, params, options, source, extra);
  }

  #buildRun(job: EffectiveJob, params: unknown, options: TriggerOptions, source: RunSource, extra: Partial<Run> | undefined): Run {
    const name = job.name;
    const now = this.clock.now();
    const key = options.key ?? null;
    if (key !== null && (typeof key !== 'string' || key.length === 0 || key.length > 500)) {
      throw new HostError('INVALID_BODY', 'key: expected a string of 1 to 500 characters');
    }
    const priority = options.priority ?? 0;
    if (!Number.isInteger(priority) || Math.abs(priority) > 1_000_000) {
      throw new HostError('INVALID_BODY', 'priority: expected an integer between -1000000 and 1000000');
    }
    let runAtMs = now;
    if (options.runAt !== undefined) {
      runAtMs = options.runAt instanceof Date ? options.runAt.getTime() : typeof options.runAt === 'number' ? options.runAt : Date.parse(options.runAt);
      if (!Number.isFinite(runAtMs)) throw new HostError('INVALID_BODY', `runAt: not a valid time: ${String(options.runAt)}`);
      runAtMs = Math.max(runAtMs, now);
    } else if (options.delay !== undefined) {
      runAtMs = now + parseDuration(options.delay, 'delay');
    }
    this.#refuse(job, key, now, source);
    const createdAt = isoOf(now);
    return {
      id: this.#newId(),
      job: name,
      status: 'queued',
      source,
      params,
      priority,
      key,
      queue: job.queue,
      createdAt,
      runAt: runAtMs === now ? createdAt : isoOf(runAtMs),
      startedAt: null,
      endedAt: null,
      durationMs: null,
      progress: { fraction: 0, text: null },
      attempts: [],
      maxAttempts: job.maxAttempts,
      result: null,
      error: null,
      retryOf: null,
      event: null,
      ...extra,
    };
  }

  #validateParams(job: EffectiveJob, input: unknown): unknown {
    let params = input;
    const hasDefaults = Object.keys(job.paramDefaults).length > 0;
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      if (!job.paramsSchema) throw new HostError('INVALID_PARAMS', 'params: expected an object', { issues: [{ path: '', message: 'expected an object' }] });
    }
    if (hasDefaults && (params === undefined || (typeof params === 'object' && params !== null && !Array.isArray(params)))) {
      params = { ...job.paramDefaults, ...(params as object | undefined) };
    }
    if (job.paramsSchema) {
      const result = job.paramsSchema['~standard'].validate(params ?? {});
      if (result instanceof Promise) return result.then(checkedParams);
      return checkedParams(result);
    }
    return checkedParams({ value: params });
  }

  /** Throws SKIPPED (and emits `run.skipped`) when the job refuses a new run now. */
  #refuse(job: EffectiveJob, key: string | null, now: number, source: RunSource): void {
    const record = this.#record(job.name);
    let reason: SkipReason | undefined;
    let detail = '';
    let runId: string | undefined;
    if (!job.enabled) {
      reason = 'disabled';
      detail = 'the job is disabled';
    } else if (job.once && (record.lastSuccessAt !== undefined || this.#runner.activeCount(job.name) > 0)) {
      reason = 'once';
      const done = record.lastSuccessAt !== undefined;
      detail = done ? 'the job may succeed once and already has' : 'a run of this once-only job is already queued or running';
      runId = done ? record.lastRun?.runId : this.#runner.firstActive(job.name)?.id;
    } else if (job.cooldownMs > 0 && record.lastSuccessAt !== undefined && now < Date.parse(record.lastSuccessAt) + job.cooldownMs) {
      reason = 'cooldown';
      detail = `cooling down until ${isoOf(Date.parse(record.lastSuccessAt) + job.cooldownMs)}`;
    } else if (key !== null && this.#runner.byKey(job.name, key)) {
      reason = 'duplicate';
      runId = this.#runner.byKey(job.name, key)!.id;
      detail = `run ${runId} with key "${key}" is already queued or running`;
    } else if (job.overlap === 'skip' && this.#runner.activeCount(job.name) > 0) {
      reason = 'overlap';
      runId = this.#runner.firstActive(job.name)?.id;
      detail = `run ${runId ?? ''} is already queued or running`;
    }
    if (reason === undefined) return;
    this.bus.emit('run.skipped', { job: job.name, reason, source, detail, ...(runId !== undefined ? { runId } : {}) });
    throw new HostError('SKIPPED', `${reason}: ${detail}`, { reason, job: job.name, ...(runId !== undefined ? { runId } : {}) });
  }

  /** Publishes an app event: every job with a matching `on` is triggered with the payload as params. */
  async publish(event: string, payload?: unknown): Promise<PublishResult> {
    this.#acceptingWork();
    const result: PublishResult = { enqueued: [], skipped: [], errors: [] };
    for (const sub of this.#subscriptions.get(event) ?? []) {
      try {
        const run = await this.#newRun(sub.job, { params: payload, delay: sub.delayMs }, 'event', { event });
        await this.#enqueue(run);
        result.enqueued.push(run.id);
      } catch (err) {
        if (isHostError(err) && err.code === 'SKIPPED') result.skipped.push({ job: sub.job, reason: err.details?.['reason'] as SkipReason });
        else if (isHostError(err)) result.errors.push({ job: sub.job, code: err.code, message: err.message });
        else throw err;
      }
    }
    return result;
  }

  #fire(name: string, dueAt: number): void {
    const record = this.#record(name);
    record.lastFireAt = dueAt;
    void this.#store.saveJob(name, record);
    this.trigger(name, { source: 'schedule' }).catch((err: unknown) => {
      if (isHostError(err) && err.code === 'SKIPPED') return; // already emitted as run.skipped
      this.logger.error({ err, job: name }, 'scheduled trigger failed');
    });
  }

  /** With catchUp, a fire missed while the host was down runs once; without, it is logged. */
  #catchUp(name: string): void {
    const job = this.#jobs.get(name)?.job;
    if (!job?.schedule || !job.enabled) return;
    const record = this.#record(name);
    const now = this.clock.now();
    if (record.lastFireAt === undefined) {
      // The baseline: fires after this moment count as missed if the host is down for them.
      record.lastFireAt = now;
      void this.#store.saveJob(name, record);
      return;
    }
    const missed = job.schedule.next(record.lastFireAt);
    if (missed === null || missed > now) return;
    record.lastFireAt = now;
    void this.#store.saveJob(name, record);
    if (!job.catchUp) {
      this.logger.info({ job: name, missed: isoOf(missed) }, 'schedule fires were missed while the host was down; catchUp is off');
      return;
    }
    this.trigger(name, { source: 'catch-up' }).catch((err: unknown) => {
      if (!(isHostError(err) && err.code === 'SKIPPED')) this.logger.error({ err, job: name }, 'catch-up trigger failed');
    });
  }

  /** Cancels a queued or running run; RUN_FINISHED if it already ended. */
  async cancel(id: string): Promise<Run> {
    const run = this.#runner.cancel(id);
    if (run) {
      await this.#store.flush();
      return structuredClone(run);
    }
    const stored = await this.#store.getRun(id);
    if (!stored) throw new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id });
    throw new HostError('RUN_FINISHED', `run ${id} already ${stored.status}`, { runId: id, status: stored.status });
  }

  /** Replays a failed or canceled run as a new run (source `retry`). */
  async retry(id: string): Promise<TriggerResult> {
    const old = (this.#runner.get(id) && structuredClone(this.#runner.get(id))) ?? (await this.#store.getRun(id));
    if (!old) throw new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id });
    if (old.status !== 'failed' && old.status !== 'canceled') {
      throw new HostError('RUN_NOT_RETRYABLE', `run ${id} is ${old.status}; only failed or canceled runs can be retried`, { runId: id });
    }
    const run = await this.#newRun(old.job, { params: old.params, priority: old.priority, key: old.key ?? undefined }, 'retry', { retryOf: id });
    await this.#enqueue(run);
    return { runId: run.id };
  }

  // ------------------------------------------------------------------------ outcomes

  #settled(run: Run, outcome: 'succeeded' | 'failed' | 'canceled' | 'retrying'): void {
    if (outcome !== 'retrying') {
      // No write of its own: the run's final record is the durable fact; the store folds it
      // again on load if it finished after the last checkpoint.
      const record = this.#record(run.job);
      foldFinished(record, run);
      this.#store.trackJob(run.job, record);
    }
    const notify = this.#jobs.get(run.job)?.job.notify;
    if (notify) this.#notify(notify, run, outcome);
  }

  #notify(spec: NonNullable<EffectiveJob['notify']>, run: Run, status: NotifyStatus): void {
    let n: Notification | null;
    try {
      n = buildNotification(spec, run, status, isoOf(this.clock.now()), this.#newId());
    } catch (err) {
      this.logger.error({ err, job: run.job }, 'could not build the notification');
      return;
    }
    if (!n) return;
    void this.#store.saveNotification(n);
    this.bus.emit('notification', { ...n });
  }

  // ------------------------------------------------------------------------ reads

  jobs(): JobView[] {
    return [...this.#jobs.keys()].sort().map((name) => this.#view(name)!);
  }

  job(name: string): JobView | undefined {
    return this.#view(name);
  }

  #view(name: string): JobView | undefined {
    const job = this.#jobs.get(name)?.job;
    if (!job) return undefined;
    const record = this.#record(name);
    const next = job.enabled && this.#state !== 'stopping' && this.#state !== 'stopped' ? this.#scheduler.next(name) : null;
    const active = this.#runner.activeCount(name);
    const running = this.#runner.runningCount(name);
    return {
      name,
      description: job.description,
      schedule: job.schedule?.label ?? null,
      scheduleText: scheduleText(job.scheduleSpec),
      timezone: job.timezone,
      enabled: job.enabled,
      file: job.file,
      nextRun: next === null ? null : isoOf(next),
      lastRun: record.lastRun ? { ...record.lastRun } : null,
      lastSuccessAt: record.lastSuccessAt ?? null,
      counts: {
        succeeded: record.counts?.succeeded ?? 0,
        failed: record.counts?.failed ?? 0,
        canceled: record.counts?.canceled ?? 0,
        queued: active - running,
        running,
      },
      paramsSchema: paramsJsonSchema(job.paramsSchema),
      paramDefaults: { ...job.paramDefaults },
      queue: job.queue,
      concurrency: job.concurrency,
      overlap: job.overlap,
      retry: { ...job.retry },
      timeoutMs: job.timeoutMs,
      cooldownMs: job.cooldownMs,
      once: job.once,
      catchUp: job.catchUp,
      on: job.on.map((o) => ({ ...o })),
      notify: job.notify ? structuredClone(job.notify) : null,
    };
  }

  /** History, newest first, across segments; `next` is the cursor for `before`. */
  runs(query: RunQuery = {}): Promise<Page<Run>> {
    return this.#store.listRuns(query);
  }

  async run(id: string): Promise<Run | undefined> {
    const live = this.#runner.get(id);
    if (live) return structuredClone(live);
    return this.#store.getRun(id);
  }

  /** Resolves with the run once it is final. */
  async wait(id: string): Promise<Run> {
    if (!this.#runner.get(id)) {
      const run = await this.#store.getRun(id);
      if (!run) throw new HostError('RUN_NOT_FOUND', `no run with id "${id}"`, { runId: id });
      if (isFinal(run.status)) return run;
    }
    return new Promise<Run>((resolve) => {
      const done = (e: AnyHostEvent): void => {
        if (e.data.job !== null && 'runId' in e.data && e.data.runId === id && (e.type === 'run.succeeded' || e.type === 'run.failed' || e.type === 'run.canceled')) {
          close();
          void this.run(id).then((r) => resolve(r!));
        }
      };
      const close = this.bus.on('*', done);
    });
  }

  notifications(query: { limit?: number; before?: string; job?: string } = {}): Page<Notification> {
    return this.#store.listNotifications(query);
  }

  stats(): Stats {
    const depths = this.#runner.depths();
    const perJob: Record<string, JobStats> = {};
    let succeeded = 0;
    let failed = 0;
    let canceled = 0;
    const names = new Set([...this.#jobs.keys(), ...[...this.#records.entries()].filter(([, r]) => r.counts).map(([n]) => n)]);
    for (const name of [...names].sort()) {
      const r = this.#record(name);
      const s = r.counts?.succeeded ?? 0;
      const f = r.counts?.failed ?? 0;
      const c = r.counts?.canceled ?? 0;
      succeeded += s;
      failed += f;
      canceled += c;
      perJob[name] = {
        count: s + f + c,
        succeeded: s,
        failed: f,
        canceled: c,
        successRate: s + f > 0 ? s / (s + f) : null,
        p50Ms: percentile(r.durations ?? [], 50),
        p95Ms: percentile(r.durations ?? [], 95),
        lastRun: r.lastRun ? { ...r.lastRun } : null,
      };
    }
    let enabled = 0;
    let scheduled = 0;
    for (const { job } of this.#jobs.values()) {
      if (job.enabled) enabled++;
      if (job.enabled && job.schedule) scheduled++;
    }
    return {
      state: this.#state,
      totals: {
        runs: succeeded + failed + canceled,
        succeeded,
        failed,
        canceled,
        queued: depths.ready + depths.parked,
        delayed: depths.delayed,
        running: depths.running,
      },
      successRate: succeeded + failed > 0 ? succeeded / (succeeded + failed) : null,
      jobs: { total: this.#jobs.size, enabled, running: depths.running, scheduled },
      perJob,
      queues: depths.queues,
      store: this.#store.stats(),
      events: { seq: this.bus.seq },
    };
  }

  /** Whether the scheduler is armed (for readiness). */
  get schedulerRunning(): boolean {
    return this.#scheduler.running;
  }

  /**
   * Enabled scheduled jobs with no success within twice their period (for readiness). The period
   * is the gap between the job's next two fires; a job that never succeeded counts from when it
   * was registered in this process.
   */
  staleJobs(): StaleJob[] {
    const now = this.clock.now();
    const stale: StaleJob[] = [];
    for (const [name, { job, registeredAt }] of this.#jobs) {
      if (!job.enabled || !job.schedule) continue;
      let periodMs: number;
      try {
        const first = job.schedule.next(now);
        const second = first === null ? null : job.schedule.next(first);
        if (first === null || second === null) continue;
        periodMs = second - first;
      } catch {
        continue; // the scheduler logs a schedule that cannot compute its next fire
      }
      const lastSuccessAt = this.#record(name).lastSuccessAt ?? null;
      const since = lastSuccessAt !== null ? Date.parse(lastSuccessAt) : registeredAt;
      if (now - since > 2 * periodMs) stale.push({ job: name, schedule: job.schedule.label, periodMs, lastSuccessAt });
    }
    return stale;
  }

  // ------------------------------------------------------------------------ events

  /** Listens to one event type, or `'*'` for all. Returns the unsubscribe function. */
  on<T extends EventType>(type: T, listener: Listener<HostEvent<T>>): () => void;
  on(type: '*', listener: Listener<AnyHostEvent>): () => void;
  on(type: string, listener: Listener<never>): () => void {
    return this.bus.on(type as '*', listener as Listener<AnyHostEvent>);
  }

  /** Events as an async iterator, with the WebSocket's filters and `since` replay. */
  events(filter: EventFilter & { since?: number } = {}): AsyncIterableIterator<AnyHostEvent> {
    const buffer: AnyHostEvent[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const sub = this.bus.subscribe(
      filter,
      (e) => {
        buffer.push(e);
        wake?.();
      },
      filter.since,
    );
    const iterator: AsyncIterableIterator<AnyHostEvent> = {
      next: async () => {
        while (buffer.length === 0 && !closed) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        const value = buffer.shift();
        return value ? { value, done: false } : { value: undefined, done: true };
      },
      return: async () => {
        closed = true;
        sub.close();
        wake?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
