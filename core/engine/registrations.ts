import type { Backend } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import { type Config, parseConfig } from '../contract/config.js';
import { HostError, isHostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { AfterSpec } from '../contract/plugin-schema.js';
import { parsePlugin } from '../contract/plugin-schema.js';
import { type HandlerSource, isHandlerSource } from '../contract/plugin-source.js';
import type { HostState } from '../contract/views.js';
import type { Scheduler } from '../schedule/scheduler.js';
import { afterGraph, checkAfterCycles } from './after.js';
import type { Bus } from './bus.js';
import { configChanges } from './config-changes.js';
import type { Fires } from './fires.js';
import { changedFields, type EffectiveJob } from './jobs.js';
import type { JobRegistry } from './registry.js';

export interface RegistrationsOptions {
  registry: JobRegistry;
  backend: Backend;
  scheduler: Scheduler;
  fires: Fires;
  bus: Bus;
  clock: Clock;
  logger: Logger;
  state(): HostState;
  config(): Config;
  /** Takes a new config into force. */
  setConfig(config: Config): void;
}

/**
 * What changes the set of jobs or how they run: registering, replacing and removing plugins,
 * config edits and run-time enable/disable. Each change re-arms the job's schedule, tells the
 * backend, and is announced on the bus.
 */
export class Registrations {
  readonly #o: RegistrationsOptions;
  /** Jobs already told to run inline for want of a file (said once per process). */
  readonly #inlineNoted = new Set<string>();

  constructor(options: RegistrationsOptions) {
    this.#o = options;
  }

  /** See `Host.register`; returns the job's name. */
  register(plugin: unknown, file: string | null, source: HandlerSource | null): string {
    const { registry, bus } = this.#o;
    const config = this.#o.config();
    const spec = parsePlugin(plugin);
    if (source !== null && !isHandlerSource(source)) {
      // A path, say: only the plugins directory makes one (the file compiled for a worker thread).
      throw new HostError(
        'PLUGIN_INVALID',
        'source: expected the compiled plugin the plugins directory passes, not a path; leave it out and the handler runs inline',
        {
          job: spec.name,
          path: 'source',
        },
      );
    }
    const existing = registry.get(spec.name);
    if (existing && existing.job.file !== null && file !== null && existing.job.file !== file) {
      throw new HostError('PLUGIN_DUPLICATE', `name: job "${spec.name}" is already defined in ${existing.job.file}; ${file} declares it too`, {
        job: spec.name,
        files: [existing.job.file, file],
      });
    }
    const job = registry.resolve(spec, { file, source }, config);
    if (job.queue !== (config.jobs[spec.name]?.queue ?? spec.queue)) {
      this.#o.logger.warn(
        { job: spec.name, queue: spec.queue },
        `job "${spec.name}": queue "${spec.queue}" is not in the config's queues; it runs in "default"`,
      );
    }
    if (job.isolation !== job.requestedIsolation && !this.#inlineNoted.has(spec.name)) {
      this.#inlineNoted.add(spec.name);
      // Debug: embedders register in code all the time, and their stdout is theirs.
      this.#o.logger.debug(
        { job: spec.name },
        `job "${spec.name}" runs inline: it was registered in code, and a worker thread has no file to load its handler from (isolation: 'inline' says so and silences this)`,
      );
    }
    if (job.after.length > 0) checkAfterCycles(afterGraph(registry, new Map([[spec.name, job.after]])));
    registry.set(spec.name, job, this.#o.clock.now());
    this.#changed(spec.name, job);
    const data = { job: spec.name, file, schedule: job.schedule?.label ?? null, enabled: job.enabled };
    if (existing) bus.emit('job.updated', { ...data, changed: changedFields(existing.job, job) });
    else bus.emit('job.registered', data);
    if (!existing && this.#o.state() === 'running') this.#o.fires.catchUp(spec.name);
    return spec.name;
  }

  /** See `Host.unregister`. */
  unregister(name: string): boolean {
    const entry = this.#o.registry.delete(name);
    if (!entry) return false;
    this.#o.scheduler.set(name, null);
    this.#o.backend.jobChanged(name);
    this.#o.bus.emit('job.removed', { job: name, file: entry.job.file });
    return true;
  }

  /** The backend saw a job's flags change on another host: resolve it again and announce a toggle. */
  flagsChanged(name: string): void {
    const entry = this.#o.registry.get(name);
    if (!entry) return;
    const was = entry.job.enabled;
    this.reresolve(name);
    const now = this.#o.registry.get(name)!.job.enabled;
    if (was !== now) this.#o.bus.emit(now ? 'job.enabled' : 'job.disabled', { job: name });
  }

  /** Resolves a registered job again (config or flags changed); returns what changed. */
  reresolve(name: string): string[] {
    const r = this.#o.registry.reresolve(name, this.#o.config());
    if (!r) return [];
    this.#changed(name, r.job);
    return r.changed;
  }

  #changed(name: string, job: EffectiveJob): void {
    this.#o.scheduler.set(name, job.enabled ? job.schedule : null);
    this.#o.backend.jobChanged(name);
  }

  /** See `Host.applyConfig`. */
  applyConfig(input: unknown): { changed: string[]; restartRequired: string[] } {
    const { registry, backend, bus } = this.#o;
    const next = parseConfig(input);
    const previous = this.#o.config();
    // Check every job against the new config before touching anything: all or nothing.
    const after = new Map<string, AfterSpec>();
    for (const [name, { job }] of registry.entries()) {
      const resolved = registry.resolve(job.spec, job, next, (q) => q in next.queues);
      after.set(name, resolved.after);
      // A destination a loaded job names, removed (or renamed) by this edit: every open delivery to it would die.
      for (const to of resolved.notify?.to ?? []) {
        if (Object.hasOwn(previous.notifications.destinations, to) && !Object.hasOwn(next.notifications.destinations, to)) {
          throw new HostError(
            'DESTINATION_NOT_FOUND',
            `notifications.destinations.${to}: job "${name}" names destination "${to}" (notify.to), which this edit removes: change the job's notify.to first`,
            { path: `notifications.destinations.${to}`, job: name, destination: to },
          );
        }
      }
    }
    try {
      checkAfterCycles(after);
    } catch (err) {
      // The config closed the cycle: its error names the config's `after` that did (a live edit's config.error shows the path).
      const jobs = isHostError(err) && err.code === 'AFTER_CYCLE' ? (err.details?.['jobs'] as string[] | undefined) : undefined;
      // The entry this edit changed, before one that was there already.
      const fromConfig = jobs?.filter((name) => next.jobs[name]?.after !== undefined) ?? [];
      const edited = fromConfig.find((name) => JSON.stringify(next.jobs[name]?.after) !== JSON.stringify(previous.jobs[name]?.after)) ?? fromConfig[0];
      if (!edited) throw err;
      throw new HostError('AFTER_CYCLE', `jobs.${edited}.after: ${(err as HostError).message.replace(/^after: /, '')}`, {
        ...(err as HostError).details,
        path: `jobs.${edited}.after`,
      });
    }
    const { changed, restartRequired, enabledEdited } = configChanges(previous, next);
    // An enabled flag edited in the config is the newest word on it: it replaces a run-time toggle.
    for (const name of enabledEdited) {
      if (backend.jobState(name).enabled !== undefined) {
        backend
          .setJobFlags(name, { enabled: null })
          .catch((err: unknown) => this.#o.logger.error({ err, job: name }, 'could not clear the run-time enabled flag'));
      }
    }
    this.#o.setConfig(next);
    backend.setLimits(next.concurrency, next.queues);
    for (const name of registry.names()) {
      const was = registry.get(name)!.job.enabled;
      const fields = this.reresolve(name);
      const job = registry.get(name)!.job;
      if (fields.length > 0) {
        bus.emit('job.updated', { job: name, file: job.file, schedule: job.schedule?.label ?? null, enabled: job.enabled, changed: fields });
      }
      if (was !== job.enabled) bus.emit(job.enabled ? 'job.enabled' : 'job.disabled', { job: name });
    }
    for (const name of Object.keys(next.jobs)) {
      if (!registry.has(name)) this.#o.logger.warn({ job: name }, `config has jobs.${name} but no plugin defines that job (yet)`);
    }
    return { changed, restartRequired };
  }

  /** See `Host.setEnabled`. */
  async setEnabled(name: string, enabled: boolean): Promise<void> {
    const entry = this.#o.registry.get(name);
    if (!entry) throw new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
    const was = entry.job.enabled;
    const saved = this.#o.backend.setJobFlags(name, { enabled });
    this.reresolve(name);
    if (this.#o.state() === 'running') await saved;
    if (was !== enabled) this.#o.bus.emit(enabled ? 'job.enabled' : 'job.disabled', { job: name });
  }
}
