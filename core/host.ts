import path from 'node:path';
import { Bus, type EventFilter, type Listener } from './bus.js';
import { isoTime as isoOf, systemClock, type Clock } from './clock.js';
import { parseConfig, type Config, type ConfigInput } from './config.js';
import { HostError, isHostError } from './errors.js';
import type { AnyHostEvent, EventType, HostEvent, SkipReason } from './events.js';
import { queuedData } from './events.js';
import { changedFields, foldFinished, type EffectiveJob } from './jobs.js';
import { createLogger, type Logger } from './logger.js';
import { buildNotification, type Notification } from './notify.js';
import { parsePlugin, type NotifyStatus, type PluginDefinition } from './plugin.js';
import { JobRegistry } from './registry.js';
import { createIdGenerator, isFinal, type Run, type RunSource } from './run.js';
import { Runner } from './runner.js';
import { Scheduler } from './scheduler.js';
import { createStore, storeUnavailable, type DamageReport, type JobRecord, type Page, type RunQuery, type Store, type StoreOptions, type StoreWriteError } from './store.js';
import { buildRun, refusal, validateParams, type PublishResult, type TriggerOptions, type TriggerResult } from './triggers.js';
import { jobView, runStats, staleness, type JobView, type StaleJob, type Stats } from './views.js';

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

export type { TriggerOptions, TriggerResult, PublishResult } from './triggers.js';
export type { JobView, JobStats, Stats, StaleJob } from './views.js';

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
  readonly #jobs: JobRegistry;
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
    this.#jobs = new JobRegistry((q) => this.#runner.hasQueue(q));
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
    this.#jobs.adoptRecords(loaded.jobs);
    // Jobs registered before start were resolved without their stored flags: resolve again.
    for (const name of this.#jobs.names()) this.#reresolve(name);
    this.#recover(loaded.runs);
    this.#state = 'running';
    this.#runner.start();
    this.#scheduler.start();
    for (const name of this.#jobs.names()) this.#catchUp(name);
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
      // Queued and delayed runs go back in as they were, with their runAt.
      if (run.status !== 'running') {
        void this.#runner.add(run);
        continue;
      }
      const attempt = run.attempts.at(-1);
      const error = { code: 'INTERRUPTED', message: 'the host stopped while the attempt was running' };
      if (attempt && attempt.endedAt === null) {
        attempt.endedAt = iso;
        attempt.error = error;
      }
      if (run.attempts.length >= run.maxAttempts) {
        run.status = 'failed';
        run.error = error;
        run.endedAt = iso;
        run.durationMs = run.startedAt ? Math.max(0, now - Date.parse(run.startedAt)) : null;
        void this.#store.saveRun(run);
        this.logger.warn({ job: run.job, runId: run.id }, 'run interrupted with no attempts left: failed');
        this.bus.emit('run.failed', { job: run.job, runId: run.id, attempt: run.attempts.length, durationMs: run.durationMs, error });
        this.#settled(run, 'failed');
        continue;
      }
      run.status = 'queued';
      if (run.source !== 'recovery') run.origin = run.source;
      run.source = 'recovery';
      run.runAt = iso;
      this.logger.info({ job: run.job, runId: run.id }, 'run interrupted by a stop: queued again');
      void this.#runner.add(run);
      this.bus.emit('run.queued', queuedData(run, false));
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
    const job = this.#jobs.resolve(spec, file, this.#config);
    if (job.queue !== (this.#config.jobs[spec.name]?.queue ?? spec.queue)) {
      this.logger.warn({ job: spec.name, queue: spec.queue }, `job "${spec.name}": queue "${spec.queue}" is not in the config's queues; it runs in "default"`);
    }
    this.#jobs.set(spec.name, job, this.clock.now());
    this.#jobsChanged(spec.name, job);
    const data = { job: spec.name, file, schedule: job.schedule?.label ?? null, enabled: job.enabled };
    if (existing) this.bus.emit('job.updated', { ...data, changed: changedFields(existing.job, job) });
    else this.bus.emit('job.registered', data);
    if (!existing && this.#state === 'running') this.#catchUp(spec.name);
    return this.#view(spec.name)!;
  }

  /** Removes a job: its schedule stops; runs in flight finish; queued runs wait for it to return. */
  unregister(name: string): boolean {
    const entry = this.#jobs.delete(name);
    if (!entry) return false;
    this.#scheduler.set(name, null);
    this.bus.emit('job.removed', { job: name, file: entry.job.file });
    return true;
  }

  /** The file a job came from (null for code-registered jobs), or undefined for no such job. */
  fileOf(name: string): string | null | undefined {
    return this.#jobs.get(name)?.job.file;
  }

  #record(name: string): JobRecord {
    return this.#jobs.record(name);
  }

  /** Resolves a registered job again (config or flags changed); returns what changed. */
  #reresolve(name: string): string[] {
    const r = this.#jobs.reresolve(name, this.#config);
    if (!r) return [];
    this.#jobsChanged(name, r.job);
    return r.changed;
  }

  #jobsChanged(name: string, job: EffectiveJob): void {
    this.#scheduler.set(name, job.enabled ? job.schedule : null);
    this.#runner.jobChanged(name);
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
    for (const [, { job }] of this.#jobs.entries()) this.#jobs.resolve(job.spec, job.file, next, (q) => q in next.queues);
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
    for (const name of this.#jobs.names()) {
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
    // A new run's runAt is either its creation time (now) or later: the clock has the number.
    const durable = this.#runner.add(run, run.runAt === run.createdAt ? this.clock.now() : Date.parse(run.runAt));
    this.bus.emit('run.queued', queuedData(run, run.runAt !== run.createdAt));
    return durable;
  }

  /** Validates a trigger and builds its run; a promise only when the params schema is async. */
  #newRun(name: string, options: TriggerOptions, source: RunSource, extra?: Partial<Run>): Run | Promise<Run> {
    this.#acceptingWork();
    const entry = this.#jobs.get(name);
    if (!entry) throw new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
    const params = validateParams(entry.job, options.params);
    if (params instanceof Promise) return params.then((p) => this.#admit(entry.job, p, options, source, extra));
    return this.#admit(entry.job, params, options, source, extra);
  }

  /** Builds the run, or refuses it: SKIPPED, with `run.skipped` emitted. */
  #admit(job: EffectiveJob, params: unknown, options: TriggerOptions, source: RunSource, extra: Partial<Run> | undefined): Run {
    // While the store cannot write (a full disk), a run would only live in memory: refuse it
    // with a time to retry rather than queue work that cannot be acknowledged.
    const writeError = this.#store.writeError;
    if (writeError) throw storeUnavailable(writeError);
    const now = this.clock.now();
    const run = buildRun(job, params, options, source, now, this.#newId(), extra);
    const refused = refusal(job, this.#record(job.name), this.#runner, run.key, now);
    if (refused) {
      const runId = refused.runId !== undefined ? { runId: refused.runId } : {};
      this.bus.emit('run.skipped', { job: job.name, reason: refused.reason, source, detail: refused.detail, ...runId });
      throw new HostError('SKIPPED', `${refused.reason}: ${refused.detail}`, { reason: refused.reason, job: job.name, ...runId });
    }
    return run;
  }

  /** Publishes an app event: every job with a matching `on` is triggered with the payload as params. */
  async publish(event: string, payload?: unknown): Promise<PublishResult> {
    this.#acceptingWork();
    const writeError = this.#store.writeError;
    if (writeError) throw storeUnavailable(writeError);
    const result: PublishResult = { enqueued: [], skipped: [], errors: [] };
    for (const sub of this.#jobs.subscribers(event)) {
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
    return this.#jobs.names().sort().map((name) => this.#view(name)!);
  }

  job(name: string): JobView | undefined {
    return this.#view(name);
  }

  #view(name: string): JobView | undefined {
    const job = this.#jobs.get(name)?.job;
    if (!job) return undefined;
    const armed = job.enabled && this.#state !== 'stopping' && this.#state !== 'stopped';
    return jobView(job, this.#record(name), {
      nextRun: armed ? this.#scheduler.next(name) : null,
      active: this.#runner.activeCount(name),
      running: this.#runner.runningCount(name),
    });
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
    const records = this.#jobs.records();
    const withCounts = [...records].filter(([, r]) => r.counts).map(([n]) => n);
    const { perJob, succeeded, failed, canceled } = runStats(records, [...this.#jobs.names(), ...withCounts]);
    let enabled = 0;
    let scheduled = 0;
    for (const [, { job }] of this.#jobs.entries()) {
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

  /** The store's condition (readiness, metrics): why it cannot write, if so; damage found in its files. */
  storeHealth(): { writeError: StoreWriteError | null; damage: DamageReport[]; damagedLines: number } {
    const { reports, damagedLines } = this.#store.damage();
    return { writeError: this.#store.writeError, damage: reports, damagedLines };
  }

  /** Acknowledges store damage reports (every unacknowledged one without `ids`): `/ready` stops listing them. */
  async ackStoreDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }> {
    const result = await this.#store.ackDamage(ids);
    if (result.acknowledged.length > 0) this.logger.info({ ids: result.acknowledged.map((r) => r.id) }, 'store damage acknowledged');
    return result;
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
    for (const [name, { job, registeredAt }] of this.#jobs.entries()) {
      const s = staleness(job, this.#record(name), registeredAt, now);
      if (s) stale.push(s);
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
    return this.bus.iterate(filter, filter.since);
  }
}
