import type { Backend } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import { eventHost } from '../contract/events.js';
import type { Logger } from '../contract/logger.js';
import type { NotifyStatus } from '../contract/notification.js';
import type { Page, Run, RunQuery } from '../contract/run.js';
import type { ClusterView, HostState, Stats } from '../contract/views.js';
import { Notifier } from '../notify/notifier.js';
import { Scheduler } from '../schedule/scheduler.js';
import { After } from './after.js';
import { Alerts } from './alerts.js';
import { Audit } from './audit.js';
import { createBackend } from './backends.js';
import { Bus } from './bus.js';
import { Deliveries } from './deliveries.js';
import { Fires } from './fires.js';
import { HostAlerts } from './host-alerts.js';
import type { HostOptions } from './host-options.js';
import { createIdGenerator, type IdGenerator } from './ids.js';
import { Insight } from './insight.js';
import { Executors } from './isolation.js';
import { Missed } from './missed.js';
import { Pauses } from './pause.js';
import { Registrations } from './registrations.js';
import { JobRegistry } from './registry.js';
import { RunEvents, type RunWatch } from './run-events.js';
import { RunLogs } from './run-logs.js';
import { type TriggerResult, Triggers } from './triggers.js';
import { RunWaits } from './waits.js';

/** The parts a host is made of, wired to each other. */
export interface HostParts {
  bus: Bus;
  backend: Backend;
  executor: Executors;
  observer: RunEvents;
  logs: RunLogs;
  insight: Insight;
  scheduler: Scheduler;
  jobs: JobRegistry;
  triggers: Triggers;
  fires: Fires;
  registrations: Registrations;
  notifier: Notifier;
  deliveries: Deliveries;
  alerts: Alerts;
  missed: Missed;
  hostAlerts: HostAlerts;
  /** Chaining (`after`): what a run's end triggers. */
  after: After;
  /** Everyone in `host.wait`. */
  waits: RunWaits;
  audit: Audit;
  pauses: Pauses;
  newId: IdGenerator;
  /** Queue names any config of this process has had (a dropped queue keeps its runs). */
  queues: Set<string>;
}

/** What the parts need of the host itself: its identity, and the calls that go through it. */
export interface HostSide {
  id: string;
  clock: Clock;
  logger: Logger;
  random: () => number;
  /** The store's directory, or null for an in-memory store. */
  dir: string | null;
  state(): HostState;
  /** Where the host serves its API and dashboard while it listens, else null. */
  url(): string | null;
  config(): Config;
  setConfig(next: Config): void;
  /** The host's own API, for the parts that call back into it (the host itself). */
  calls: HostCalls;
}

/** The calls of the host's API its parts make. */
export interface HostCalls {
  retry(id: string): Promise<TriggerResult>;
  runs(query: RunQuery): Promise<Page<Run>>;
  run(id: string): Promise<Run | undefined>;
  stats(): Stats;
  cluster(): ClusterView;
}

/**
 * Builds the parts of a host (bus, backend, executor, registry, triggers, scheduler and what
 * watches runs) and ties them together; the host owns their lifecycle. Parts that need one built
 * later reach it through a closure, called only once everything exists.
 */
export function wireHost(host: HostSide, options: HostOptions): HostParts {
  const { clock, logger } = host;
  // New work (a trigger, an event, a bulk action) is taken only while running.
  const accepting = (): void => {
    const state = host.state();
    if (state === 'stopping' || state === 'stopped') throw new HostError('SHUTTING_DOWN', 'the host is shutting down');
    if (state !== 'running') throw new HostError('NOT_STARTED', 'the host has not started');
  };
  const config = host.config();
  const newId = createIdGenerator(() => clock.now(), host.random);
  const queues = new Set(Object.keys(config.queues));
  const bus = new Bus({ clock, logger, capacity: config.events.buffer, maxBytes: config.events.bufferBytes });
  const backend = createBackend(config, { dir: host.dir, tuning: options.storeOptions, clock, random: host.random, logger, hostId: host.id });
  // Other hosts sharing the backend see this host's events (its own, not those it relays).
  if (backend.shared) bus.on('*', (e) => (eventHost(e) === undefined ? backend.share(e) : undefined));
  const jobs = new JobRegistry(
    (name) => backend.jobState(name),
    (q) => queues.has(q),
  );
  const logs = new RunLogs({ bus, clock, logger, backend: () => backend });
  const insight = new Insight({
    bus,
    clock,
    logger,
    backend: () => backend,
    logs,
    registered: (job) => jobs.get(job) !== undefined,
    retry: (id) => host.calls.retry(id),
    accepting,
  });
  const notifier = new Notifier({ config: () => host.config(), clock, random: host.random, logger, hostId: host.id, servedAt: () => host.url() });
  const deliveries = new Deliveries({ bus, clock, logger, notifier, backend: () => backend });
  // A removed job's runs in flight finish on its old version: their ends (failed, slow, ...) are told as it said.
  const notifySpec = (job: string) => (jobs.get(job) ?? jobs.retired(job))?.job.notify;
  const alerts = new Alerts({ bus, clock, logger, newId, config: () => host.config(), backend: () => backend, notifier, notifySpec });
  const missed = new Missed({
    clock,
    logger,
    backend: () => backend,
    // The fires of a paused job, or of a job whose queue is paused, wait on purpose: not missed (SPEC §13).
    job: (name) => {
      const job = jobs.get(name)?.job;
      return job && !backend.pauses.holds(name, job.queue) ? job : undefined;
    },
    alert: (job, fireAt, reason) => alerts.missed(job, fireAt, reason),
  });
  // A closure: the scheduler is built below.
  const hostAlerts = new HostAlerts({
    clock,
    logger,
    newId,
    hostId: host.id,
    config: () => host.config(),
    backend: () => backend,
    alerts,
    registry: jobs,
    nextFire: (job) => scheduler.next(job),
    cluster: () => host.calls.cluster(),
    // Runs held by a pause wait with free capacity on purpose (SPEC §13).
    paused: () => backend.paused || backend.pauses.list().jobs.length + backend.pauses.list().queues.length > 0,
  });
  const settleFailed = (run: Run, outcome: NotifyStatus, err: unknown): void => {
    logger.error({ err, job: run.job, runId: run.id }, 'could not notify the outcome of the run');
    if (outcome !== 'retrying') backend.told?.(run.id, false);
  };
  const watch: RunWatch = {
    started: (run) => {
      hostAlerts.started();
      missed.started(run.id, run.source);
      alerts.started(run);
    },
    finished: (run) => {
      alerts.finished(run);
      after.finished(run);
    },
    settled: (run, outcome, untold) => {
      // A run's end told: the mark its end's write left (cluster mode) goes, so no other host tells
      // it again. Nothing is allocated on the way when the job tells nothing (the hot path).
      let done: boolean | Promise<boolean>;
      try {
        done = alerts.settled(run, outcome, untold);
      } catch (err) {
        return settleFailed(run, outcome, err);
      }
      if (typeof done === 'boolean') {
        if (outcome !== 'retrying') backend.told?.(run.id, done);
        return;
      }
      done.then(
        (told) => outcome !== 'retrying' && backend.told?.(run.id, told),
        (err: unknown) => settleFailed(run, outcome, err),
      );
    },
  };
  const observer = new RunEvents({ bus, watch, logs });
  const executor = new Executors({
    logger,
    clock,
    workers: config.workers,
    reader: { runs: (query) => host.calls.runs(query ?? {}), run: (id) => host.calls.run(id), stats: () => host.calls.stats() },
    // The payload was measured where it became JSON (ctx.emit): not measured again.
    publish: (event, payload, runId) => {
      triggers.publish(event, payload, { measured: true }).catch((err: unknown) => logger.error({ err, event, runId }, 'ctx.emit failed'));
    },
    limits: () => host.config().limits,
    log: (task, level, msg, fields) => logs.line(task, level, msg, fields),
  });
  const triggers = new Triggers({ bus, clock, registry: jobs, backend, newId, accepting, limits: () => host.config().limits });
  const after = new After({ registry: jobs, triggers, backend, bus, clock, logger, state: () => host.state(), limits: () => host.config().limits });
  const fires = new Fires({ clock, logger, backend, registry: jobs, triggers, missed, random: host.random });
  // A job enabled: its disabled stretch is neither missed nor downtime. The fire baseline moves on
  // this host's own enable only (another host's, relayed, was noted there).
  bus.on('job.enabled', (e) => {
    missed.enabled(e.data.job);
    if (e.data.host === undefined) fires.enabled(e.data.job);
  });
  const scheduler = new Scheduler({ clock, logger, fire: (job, at, through) => fires.fire(job, at, through) });
  const registrations = new Registrations({
    registry: jobs,
    backend,
    scheduler,
    fires,
    bus,
    clock,
    logger,
    state: () => host.state(),
    config: () => host.config(),
    setConfig: (next) => {
      host.setConfig(next);
      for (const q of Object.keys(next.queues)) queues.add(q);
    },
  });
  return {
    bus,
    backend,
    executor,
    observer,
    logs,
    insight,
    scheduler,
    jobs,
    triggers,
    fires,
    registrations,
    notifier,
    deliveries,
    alerts,
    missed,
    hostAlerts,
    after,
    waits: new RunWaits({ bus, backend, clock }),
    audit: new Audit({ backend: () => backend, clock, newId, hostId: host.id }),
    pauses: new Pauses({ bus, backend, registry: jobs, config: () => host.config(), state: () => host.state() }),
    newId,
    queues,
  };
}
