import type { Backend } from '../contract/backend.js';
import { type Clock, isoTime, type Timer } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import { formatDuration } from '../contract/duration.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import type { ClusterView } from '../contract/views.js';
import type { Alerts } from './alerts.js';
import type { JobRegistry } from './registry.js';

/** A degradation the host reports about itself: `/ready` shows it, and `notifications.host.to` hears when it starts and ends. */
export interface HostCondition {
  /** Stable: `store-damaged`, `store-not-writable`, `backend-unavailable`, `cluster-drift`, `event-loop-stalled`, `dispatch-stalled`, `scheduler-stalled`, `events-lost`. */
  id: string;
  message: string;
}

export interface HostAlertsOptions {
  clock: Clock;
  logger: Logger;
  newId: () => string;
  hostId: string;
  config(): Config;
  backend(): Backend;
  alerts: Alerts;
  registry: JobRegistry;
  /** The next fire time of a scheduled job (the scheduler's). */
  nextFire(job: string): number | null;
  cluster(): ClusterView;
  paused(): boolean;
}

/** How often conditions are looked at. */
const TICK_MS = 1000;

const WORDS: Record<string, [string, string]> = {
  'store-damaged': ['store damage found', 'store damage acknowledged'],
  'store-not-writable': ['the store cannot write', 'the store writes again'],
  'backend-unavailable': ['the backend is out of reach', 'the backend is reachable again'],
  'cluster-drift': ['job definitions differ between hosts', 'job definitions agree again'],
  'event-loop-stalled': ['the event loop is stalled', 'the event loop keeps up again'],
  'dispatch-stalled': ['runs wait with free capacity', 'runs start again'],
  'scheduler-stalled': ['a schedule is overdue', 'schedules fire again'],
  'events-lost': ['events of other hosts were lost', 'no events lost lately'],
};

/** After a gap in the events from other hosts (cluster mode), `/ready` names it this long. */
const EVENTS_LOST_MS = 10 * 60_000;

/**
 * Host alerts and the stall watchdog (SPEC §12): once a second, the host's own degradations
 * (what `/ready` reports) and two kinds of silent stop — runs waiting with free capacity for
 * longer than `notifications.stallAfter` with no run starting (the dispatcher, or in cluster mode
 * its BullMQ workers, stopped taking work), and an armed schedule more than one period overdue
 * (the scheduler stopped) — each sent to `notifications.host.to` when it starts and when it
 * ends. Conditions others know of (the event loop, watched by the server) are added as sources.
 */
export class HostAlerts {
  readonly #o: HostAlertsOptions;
  readonly #sources: Array<() => HostCondition | null> = [];
  #active = new Map<string, HostCondition>();
  #lastStart: number;
  #waitingSince: number | null = null;
  #timer: Timer | undefined;
  #stopped = false;

  constructor(options: HostAlertsOptions) {
    this.#o = options;
    this.#lastStart = options.clock.now();
  }

  /** Adds a condition someone else watches (null while it does not hold). */
  source(check: () => HostCondition | null): void {
    this.#sources.push(check);
  }

  /** A run started: work flows. */
  started(): void {
    this.#lastStart = this.#o.clock.now();
  }

  /** The conditions holding now (as of the last look). */
  active(): HostCondition[] {
    return [...this.#active.values()];
  }

  start(): void {
    this.#lastStart = this.#o.clock.now();
    this.#tick();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }

  #tick(): void {
    if (this.#stopped) return;
    try {
      this.#look();
    } catch (err) {
      this.#o.logger.error({ err }, 'could not look at the host conditions');
    }
    this.#timer = this.#o.clock.setTimer(TICK_MS, () => this.#tick());
  }

  #look(): void {
    const now = this.#o.clock.now();
    const found = new Map<string, HostCondition>();
    const add = (c: HostCondition | null): void => void (c && found.set(c.id, c));
    const health = this.#o.backend().health();
    const damaged = health.damage.filter((r) => r.acknowledgedAt === null).length;
    if (damaged > 0) add({ id: 'store-damaged', message: `${damaged} store damage report${damaged === 1 ? '' : 's'} not acknowledged (jobhost store damage)` });
    if (health.writeError !== null) add({ id: 'store-not-writable', message: `the store cannot write: ${health.writeError.code}` });
    if (!health.backend.available)
      add({ id: 'backend-unavailable', message: `${health.backend.kind} backend out of reach: ${health.backend.error ?? 'unreachable'}` });
    // Alone, there is nobody to differ from (and the view hashes every job's definition).
    const drift = this.#o.backend().shared ? this.#o.cluster().drift : [];
    if (drift.length > 0) add({ id: 'cluster-drift', message: `jobs that differ between hosts: ${drift.map((d) => d.job).join(', ')}` });
    const gap = health.faults?.lastGap;
    if (gap && now - Date.parse(gap.at) < EVENTS_LOST_MS) {
      const { eventGaps, eventsLost } = health.faults!;
      const lost = gap.lost === null ? 'events' : `${gap.lost} stream entr${gap.lost === 1 ? 'y' : 'ies'} of events`;
      add({
        id: 'events-lost',
        message: `${lost} of other hosts lost at ${gap.at} (stream ${gap.from} to ${gap.to}): this host fell behind the cluster stream by more than backend.streamLength; ${eventGaps} gap(s), ${eventsLost} entries lost since start`,
      });
    }
    for (const s of this.#sources) add(s());
    add(this.#dispatch(now));
    add(this.#schedules(now));

    for (const [id, c] of found) if (!this.#active.has(id)) this.#send(c, true, now);
    for (const [id, c] of this.#active) if (!found.has(id)) this.#send(c, false, now);
    this.#active = found;
  }

  /** Runs ready, capacity free, nothing started for stallAfter. */
  #dispatch(now: number): HostCondition | null {
    const depths = this.#o.backend().depths();
    const config = this.#o.config();
    const waiting = depths.ready > 0 && depths.running < config.concurrency && !this.#o.paused();
    if (!waiting) {
      this.#waitingSince = null;
      return null;
    }
    this.#waitingSince ??= now;
    const since = Math.max(this.#waitingSince, this.#lastStart);
    const after = config.notifications.stallAfter;
    if (now - since < after) return null;
    return {
      id: 'dispatch-stalled',
      message: `${depths.ready} run${depths.ready === 1 ? '' : 's'} ready with ${config.concurrency - depths.running} of ${config.concurrency} slots free, and none started for ${formatDuration(now - since)}`,
    };
  }

  /** An armed schedule whose next fire is more than one period past. */
  #schedules(now: number): HostCondition | null {
    const late: string[] = [];
    for (const [name, { job }] of this.#o.registry.entries()) {
      if (!job.enabled || !job.schedule) continue;
      const next = this.#o.nextFire(name);
      if (next === null || next >= now) continue;
      const after = job.schedule.next(next);
      const period = after === null ? 60_000 : Math.max(1000, after - next);
      if (now - next > period) late.push(`${name} (due ${isoTime(next)})`);
    }
    return late.length === 0 ? null : { id: 'scheduler-stalled', message: `schedules more than one period overdue: ${late.slice(0, 10).join(', ')}` };
  }

  #send(c: HostCondition, starts: boolean, now: number): void {
    const [began, ended] = WORDS[c.id] ?? [c.id, `${c.id} ended`];
    this.#o.logger[starts ? 'warn' : 'info']({ condition: c.id, detail: c.message }, starts ? `host alert: ${began}` : `host alert over: ${ended}`);
    const to = this.#o.config().notifications.host.to;
    if (to.length === 0) return;
    const n: Notification = {
      id: this.#o.newId(),
      job: '',
      runId: '',
      status: starts ? 'failed' : 'recovered',
      title: `jobhost ${this.#o.hostId}: ${starts ? began : ended}`,
      message: starts ? c.message : `Over: ${c.message}`,
      priority: starts ? 'high' : 'medium',
      tags: ['host'],
      at: isoTime(now),
      rule: 'host',
      deliveries: [],
      host: this.#o.hostId,
      condition: c.id,
    };
    // In cluster mode Redis records and queues notifications: the news that it is out of reach goes out directly.
    this.#o.alerts.send(n, to, { throttle: false, direct: starts && c.id === 'backend-unavailable' });
  }
}
