import type { Logger } from '../contract/logger.js';
import type { ClusterHost } from '../contract/views.js';
import type { HostParts } from './wiring.js';

/** What plugs into the host's start and stop (plugin loader, config watcher, HTTP server). */
export interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** This host as `GET /cluster` shows it (url, start, jobs and their versions). */
type Describe = () => Pick<ClusterHost, 'url' | 'startedAt' | 'jobs' | 'destinations'>;

/**
 * Opens the backend with the engine's hooks (the backend recovers unfinished runs meanwhile),
 * then brings the engine up to date with what it holds: ids continue its node, jobs registered
 * before start are resolved again with their stored flags, the charts' index is built.
 */
export async function openBackend(p: HostParts, describe: Describe): Promise<void> {
  const opened = await p.backend.open({
    job: (name) => p.jobs.get(name)?.job,
    executor: p.executor,
    observer: p.observer,
    flagsChanged: (name) => p.registrations.flagsChanged(name),
    relay: (type, at, data) => p.bus.relay(type, at, data),
    eventsLost: ({ lost, from, to }) => p.bus.emit('events.gap', { job: null, lost, from, to }),
    describe,
    deliver: (attempt, signal) => p.deliveries.deliver(attempt, signal),
    deliveryChanged: (n, d) => p.deliveries.changed(n, d),
    after: p.after,
  });
  if (opened.idNode !== undefined) p.newId.setNode(opened.idNode);
  for (const name of p.jobs.names()) p.registrations.reresolve(name);
  p.insight.start(p.jobs.names(), opened.eventsSince);
}

/** Starts what goes on by itself once the host runs: dispatch, schedules (with their catch-up), the watchdog. */
export function startEngine(p: HostParts): void {
  p.backend.start();
  p.scheduler.start();
  for (const name of p.jobs.names()) p.fires.catchUp(name);
  p.hostAlerts.start();
}

/**
 * Starts the services (loader, config watcher, HTTP server) in order, then announces the host.
 * A service that cannot start (the port is taken) must not leave the engine running: the host
 * is stopped and the start rejects with that service's error.
 */
export async function startServices(p: HostParts, services: readonly Service[], stop: () => Promise<void>, logger: Logger): Promise<void> {
  try {
    for (const service of services) await service.start();
    // The plugins are in: what recovery could not end without them (a run's failure, its children) ends now.
    await p.backend.recovered?.();
  } catch (err) {
    await stop().catch((stopErr: unknown) => logger.error({ err: stopErr }, 'the failed start did not stop cleanly'));
    throw err;
  }
  p.bus.emit('host.started', { job: null, pid: process.pid, jobs: p.jobs.size });
}

/** The first step of a stop: no more fires, alert evaluations or watchdog rounds. */
export function stopEngine(p: HostParts): void {
  p.scheduler.stop();
  p.fires.stop();
  p.alerts.stop();
  p.missed.stop();
  p.hostAlerts.stop();
}
