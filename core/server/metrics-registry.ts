import type { Registry } from 'prom-client';
import { traceExportProblems } from '../contract/otel-sdk.js';
import type { Host } from '../engine/host.js';
import type { EventLoopWatch } from './event-loop.js';
import { type DurationTallies, registerDurations } from './run-durations.js';

/**
 * The prom-client side of `GET /metrics` (metrics.ts keeps the counts): built on the first scrape,
 * so a start never loads prom-client (~30 modules, issue 26). Every
 * metric reads its value at scrape time from the plain counts `MetricCounts` holds, which were
 * kept from the host's start; the order below is the exposition's order.
 */

type PromClient = typeof import('prom-client');

/** A counter's tallies by label values (joined with a space: label values never contain one). */
export type Tallies = Map<string, { labels: Record<string, string>; n: number }>;

/** What metrics.ts counts from bus events and the WebSocket stream before (and after) prom-client loads. */
export interface MetricCounts {
  runs: Tallies;
  skips: Tallies;
  retries: Tallies;
  events: Tallies;
  pluginErrors: number;
  configErrors: number;
  wsClients: number;
  wsCutoffs: number;
  /** Run durations by job, in their histogram's buckets. */
  durations: DurationTallies;
}

export interface BuiltRegistry {
  registry: Registry;
}

/** A counter with one or two labels whose tallies are kept in a plain map (a labelled inc() hashes its labels on every call). */
function tallied(
  prom: PromClient,
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly [string] | readonly [string, string],
  tallies: Tallies,
): void {
  new prom.Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const { labels, n } of tallies.values()) this.inc(labels, n);
    },
  });
}

/** The registry (a private one, never the global one: two hosts in one process do not collide). */
export function buildRegistry(prom: PromClient, host: Host, loop: EventLoopWatch, counts: MetricCounts): BuiltRegistry {
  const registry = new prom.Registry();
  tallied(prom, registry, 'jobhost_runs_total', 'Finished runs by job and final status', ['job', 'status'], counts.runs);
  tallied(prom, registry, 'jobhost_triggers_skipped_total', 'Refused triggers by job and reason (no run was created)', ['job', 'reason'], counts.skips);
  tallied(prom, registry, 'jobhost_run_retries_total', 'Failed attempts that were retried, by job', ['job'], counts.retries);
  tallied(prom, registry, 'jobhost_events_total', 'Bus events by type', ['type'], counts.events);
  registerDurations(registry, counts.durations);
  new prom.Counter({
    name: 'jobhost_plugin_errors_total',
    help: 'Plugin files that failed to load',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.pluginErrors);
    },
  });
  new prom.Counter({
    name: 'jobhost_config_errors_total',
    help: 'Config edits that were rejected',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.configErrors);
    },
  });
  new prom.Gauge({
    name: 'jobhost_ws_clients',
    help: 'Open WebSocket /events connections',
    registers: [registry],
    collect() {
      this.set(counts.wsClients);
    },
  });
  new prom.Counter({
    name: 'jobhost_ws_cutoffs_total',
    help: 'WebSocket clients cut off because their send buffer passed the bound',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.wsCutoffs);
    },
  });

  new prom.Counter({
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
  new prom.Gauge({
    name: 'jobhost_notification_deliveries_open',
    help: 'Deliveries of notifications waiting for an attempt (pending or retrying)',
    registers: [registry],
    collect() {
      this.set(host.deliveries.open());
    },
  });
  new prom.Gauge({
    name: 'jobhost_queue_depth',
    help: 'Runs ready to start, by queue',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [queue, depth] of Object.entries(host.stats().queues)) this.set({ queue }, depth);
    },
  });
  new prom.Gauge({
    name: 'jobhost_runs_running',
    help: 'Runs running now',
    registers: [registry],
    collect() {
      this.set(host.stats().totals.running);
    },
  });
  new prom.Gauge({
    name: 'jobhost_runs_delayed',
    help: 'Queued runs waiting for their runAt',
    registers: [registry],
    collect() {
      this.set(host.stats().totals.delayed);
    },
  });
  new prom.Gauge({
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
  new prom.Counter({
    name: 'jobhost_store_damaged_lines_total',
    help: 'Lines of store files found damaged (not a torn tail from a crash; an unreadable state.json counts as one) since the process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().damagedLines);
    },
  });
  new prom.Counter({
    name: 'jobhost_relay_dropped_total',
    help: 'Cluster mode: events and log lines dropped because Redis had not taken the ones before (an outage past the bounded backlog) since the process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.stats().store.relayDropped ?? 0);
    },
  });
  new prom.Gauge({
    name: 'jobhost_store_damage_unacknowledged',
    help: 'Store damage reports not yet acknowledged (jobhost store ack-damage)',
    registers: [registry],
    collect() {
      this.set(host.storeHealth().damage.filter((r) => r.acknowledgedAt === null).length);
    },
  });
  new prom.Gauge({
    name: 'jobhost_store_writable',
    help: '0 while the store cannot write (a full disk) and triggers are refused with 503, else 1',
    registers: [registry],
    collect() {
      this.set(host.storeHealth().writeError === null ? 1 : 0);
    },
  });
  new prom.Gauge({
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
  new prom.Gauge({
    name: 'jobhost_event_loop_slow',
    help: "1 while the main thread's event-loop delay p99 stays above eventLoop.maxDelay (/ready is degraded), else 0",
    registers: [registry],
    collect() {
      this.set(loop.slow(host.config.eventLoop.maxDelay) ? 1 : 0);
    },
  });
  new prom.Gauge({
    name: 'jobhost_worker_threads',
    help: 'Live worker threads in the pool handlers run in (0 until the first run with isolation "worker")',
    registers: [registry],
    collect() {
      this.set(host.workerStats().threads);
    },
  });
  new prom.Gauge({
    name: 'jobhost_worker_runs',
    help: 'Attempts running in worker threads',
    registers: [registry],
    collect() {
      this.set(host.workerStats().running);
    },
  });
  new prom.Counter({
    name: 'jobhost_worker_restarts_total',
    help: 'Worker threads replaced, by reason: grace (a handler did not let go after its abort), exit (process.exit), memory (workers.maxMemoryMb), crash',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(host.workerStats().restarts)) this.inc({ reason }, n);
    },
  });
  new prom.Gauge({
    name: 'jobhost_backend_available',
    help: '0 while the backend (Redis, in cluster mode) cannot be reached and triggers are refused with 503, else 1',
    registers: [registry],
    collect() {
      this.set(host.storeHealth().backend.available ? 1 : 0);
    },
  });
  new prom.Counter({
    name: 'jobhost_trace_export_problems_total',
    help: 'Problems the OpenTelemetry SDK reported (spans that could not be exported, or were dropped from a full queue); zero without tracing',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(traceExportProblems());
    },
  });
  // Cluster mode: what a cut from Redis cost (zero on one host).
  new prom.Counter({
    name: 'jobhost_late_finishes_total',
    help: 'Ends of attempts made on this host after another host had taken the run over (its lock lapsed while this host was cut off from Redis), refused by BullMQ',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().faults?.lateFinishes ?? 0);
    },
  });
  new prom.Counter({
    name: 'jobhost_event_gaps_total',
    help: "Times this host's reading of the cluster event stream fell behind by more than the stream keeps (events.gap)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().faults?.eventGaps ?? 0);
    },
  });
  new prom.Counter({
    name: 'jobhost_events_lost_total',
    help: 'Entries of the cluster event stream (events of other hosts) this host never received, over all gaps',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.storeHealth().faults?.eventsLost ?? 0);
    },
  });
  new prom.Gauge({
    name: 'jobhost_up',
    help: '1 while the host is running (not starting or stopping)',
    registers: [registry],
    collect() {
      this.set(host.state === 'running' ? 1 : 0);
    },
  });

  return { registry };
}
