import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { eventHost } from '../contract/events.js';
import { traceExportProblems } from '../contract/otel-sdk.js';
import type { Host } from '../engine/host.js';
import type { EventLoopWatch } from './event-loop.js';

/**
 * `GET /metrics`: a prom-client registry of its own (never the global one, so two hosts in one
 * process do not collide), fed from bus events; gauges that mirror the host's state are read
 * from it at scrape time instead of being kept in step by hand.
 */

/** What the WebSocket stream reports to the metrics. */
export interface StreamObserver {
  opened(): void;
  closed(): void;
  /** A client was cut off for not reading its messages. */
  cut(): void;
}

export interface Metrics extends StreamObserver {
  readonly registry: Registry;
  readonly contentType: string;
  /** The exposition text. */
  text(): Promise<string>;
  /** Unsubscribes from the bus. */
  close(): void;
}

const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * A counter with one or two labels, tallied in a plain map and handed to prom-client at scrape
 * time: a labelled inc() hashes its labels on every call, and every run emits several events.
 * Label values never contain a space (job names are kebab-case), so they join into the map key.
 */
function tallied(registry: Registry, name: string, help: string, labelNames: readonly [string] | readonly [string, string]): (a: string, b?: string) => void {
  const tallies = new Map<string, { labels: Record<string, string>; n: number }>();
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const { labels, n } of tallies.values()) this.inc(labels, n);
    },
  });
  return (a, b) => {
    const key = b === undefined ? a : `${a} ${b}`;
    const tally = tallies.get(key);
    if (tally) {
      tally.n++;
      return;
    }
    const labels: Record<string, string> = { [labelNames[0]]: a };
    if (labelNames[1] !== undefined && b !== undefined) labels[labelNames[1]] = b;
    tallies.set(key, { labels, n: 1 });
  };
}

export function createMetrics(host: Host, loop: EventLoopWatch): Metrics {
  const registry = new Registry();
  const countRun = tallied(registry, 'jobhost_runs_total', 'Finished runs by job and final status', ['job', 'status']);
  const countSkip = tallied(registry, 'jobhost_triggers_skipped_total', 'Refused triggers by job and reason (no run was created)', ['job', 'reason']);
  const countRetry = tallied(registry, 'jobhost_run_retries_total', 'Failed attempts that were retried, by job', ['job']);
  const countEvent = tallied(registry, 'jobhost_events_total', 'Bus events by type', ['type']);
  const duration = new Histogram({
    name: 'jobhost_run_duration_seconds',
    help: 'Run duration (first start to end) of succeeded and failed runs, by job',
    labelNames: ['job'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const pluginErrors = new Counter({ name: 'jobhost_plugin_errors_total', help: 'Plugin files that failed to load', registers: [registry] });
  const configErrors = new Counter({ name: 'jobhost_config_errors_total', help: 'Config edits that were rejected', registers: [registry] });
  const wsClients = new Gauge({ name: 'jobhost_ws_clients', help: 'Open WebSocket /events connections', registers: [registry] });
  const wsCutoffs = new Counter({
    name: 'jobhost_ws_cutoffs_total',
    help: 'WebSocket clients cut off because their send buffer passed the bound',
    registers: [registry],
  });

  new Counter({
    name: 'jobhost_notification_deliveries_total',
    help: 'Delivery attempts of notifications made on this host, by destination and outcome (delivered, retrying, dead)',
    labelNames: ['destination', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [destination, counts] of Object.entries(host.deliveries.counts())) {
        for (const [outcome, n] of Object.entries(counts)) this.inc({ destination, outcome }, n);
      }
    },
  });
  new Gauge({
    name: 'jobhost_notification_deliveries_open',
    help: 'Deliveries of notifications waiting for an attempt (pending or retrying)',
    registers: [registry],
    collect() {
      this.set(host.deliveries.open());
    },
  });
  new Gauge({
    name: 'jobhost_queue_depth',
    help: 'Runs ready to start, by queue',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [queue, depth] of Object.entries(host.stats().queues)) this.set({ queue }, depth);
    },
  });
  new Gauge({
    name: 'jobhost_runs_running',
    help: 'Runs running now',
    registers: [registry],
    collect() {
      this.set(host.stats().totals.running);
    },
  });
  new Gauge({
    name: 'jobhost_runs_delayed',
    help: 'Queued runs waiting for their runAt',
    registers: [registry],
    collect() {
      this.set(host.stats().totals.delayed);
    },
  });
  new Gauge({
    name: 'jobhost_job_last_success_timestamp_seconds',
    help: 'Unix time of the last successful run, by job (absent before the first success)',
    labelNames: ['job'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const job of host.jobs()) {
        if (job.lastSuccessAt !== null) this.set({ job: job.name }, Date.parse(job.lastSuccessAt) / 1000);
      }
    },
  });
  new Counter({
    name: 'jobhost_store_damaged_lines_total',
    help: 'Lines of store files found damaged (not a torn tail from a crash; an unreadable state.json counts as one) since the process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().damagedLines);
    },
  });
  new Counter({
    name: 'jobhost_relay_dropped_total',
    help: 'Cluster mode: events and log lines dropped because Redis had not taken the ones before (an outage past the bounded backlog) since the process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.stats().store.relayDropped ?? 0);
    },
  });
  new Gauge({
    name: 'jobhost_store_damage_unacknowledged',
    help: 'Store damage reports not yet acknowledged (jobhost store ack-damage)',
    registers: [registry],
    collect() {
      this.set(host.storeHealth().damage.filter((r) => r.acknowledgedAt === null).length);
    },
  });
  new Gauge({
    name: 'jobhost_store_writable',
    help: '0 while the store cannot write (a full disk) and triggers are refused with 503, else 1',
    registers: [registry],
    collect() {
      this.set(host.storeHealth().writeError === null ? 1 : 0);
    },
  });
  new Gauge({
    name: 'jobhost_event_loop_delay_seconds',
    // `stat`, not `quantile`: only a summary may have a quantile label (promtool check metrics).
    help: "The main thread's event-loop delay over the last window (1 s), by stat (p50, p99, max)",
    labelNames: ['stat'] as const,
    registers: [registry],
    collect() {
      const d = loop.delay();
      this.set({ stat: 'p50' }, d.p50Ms / 1000);
      this.set({ stat: 'p99' }, d.p99Ms / 1000);
      this.set({ stat: 'max' }, d.maxMs / 1000);
    },
  });
  new Gauge({
    name: 'jobhost_event_loop_slow',
    help: "1 while the main thread's event-loop delay p99 stays above eventLoop.maxDelay (/ready is degraded), else 0",
    registers: [registry],
    collect() {
      this.set(loop.slow(host.config.eventLoop.maxDelay) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'jobhost_worker_threads',
    help: 'Live worker threads in the pool handlers run in (0 until the first run with isolation "worker")',
    registers: [registry],
    collect() {
      this.set(host.workerStats().threads);
    },
  });
  new Gauge({
    name: 'jobhost_worker_runs',
    help: 'Attempts running in worker threads',
    registers: [registry],
    collect() {
      this.set(host.workerStats().running);
    },
  });
  new Counter({
    name: 'jobhost_worker_restarts_total',
    help: 'Worker threads replaced, by reason: grace (a handler did not let go after its abort), exit (process.exit), memory (workers.maxMemoryMb), crash',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(host.workerStats().restarts)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'jobhost_backend_available',
    help: '0 while the backend (Redis, in cluster mode) cannot be reached and triggers are refused with 503, else 1',
    registers: [registry],
    collect() {
      this.set(host.storeHealth().backend.available ? 1 : 0);
    },
  });
  new Counter({
    name: 'jobhost_trace_export_problems_total',
    help: 'Problems the OpenTelemetry SDK reported (spans that could not be exported, or were dropped from a full queue); zero without tracing',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(traceExportProblems());
    },
  });
  // Cluster mode: what a cut from Redis cost (zero on one host).
  new Counter({
    name: 'jobhost_late_finishes_total',
    help: 'Ends of attempts made on this host after another host had taken the run over (its lock lapsed while this host was cut off from Redis), refused by BullMQ',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().faults?.lateFinishes ?? 0);
    },
  });
  new Counter({
    name: 'jobhost_event_gaps_total',
    help: "Times this host's reading of the cluster event stream fell behind by more than the stream keeps (events.gap)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().faults?.eventGaps ?? 0);
    },
  });
  new Counter({
    name: 'jobhost_events_lost_total',
    help: 'Entries of the cluster event stream (events of other hosts) this host never received, over all gaps',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().faults?.eventsLost ?? 0);
    },
  });
  new Gauge({
    name: 'jobhost_up',
    help: '1 while the host is running (not starting or stopping)',
    registers: [registry],
    collect() {
      this.set(host.state === 'running' ? 1 : 0);
    },
  });

  const unsubscribe = host.on('*', (event) => {
    // Each host counts what it did: another host's events (cluster mode) are counted by that host's metrics.
    if (eventHost(event) !== undefined) return;
    countEvent(event.type);
    switch (event.type) {
      case 'run.succeeded':
      case 'run.failed': {
        countRun(event.data.job, event.type === 'run.succeeded' ? 'succeeded' : 'failed');
        if (event.data.durationMs !== null) duration.observe({ job: event.data.job }, event.data.durationMs / 1000);
        break;
      }
      case 'run.canceled':
        countRun(event.data.job, 'canceled');
        break;
      case 'run.retrying':
        countRetry(event.data.job);
        break;
      case 'run.skipped':
        countSkip(event.data.job, event.data.reason);
        break;
      case 'plugin.error':
        pluginErrors.inc();
        break;
      case 'config.error':
        configErrors.inc();
        break;
      default:
        break;
    }
  });

  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    opened: () => wsClients.inc(),
    closed: () => wsClients.dec(),
    cut: () => wsCutoffs.inc(),
    close: unsubscribe,
  };
}
