import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Host } from './host.js';

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

export function createMetrics(host: Host): Metrics {
  const registry = new Registry();
  // Hot counters are tallied in plain maps and handed to prom-client at scrape time: a labelled
  // inc() hashes its labels, and every run emits several events.
  const tallies = {
    runs: new Map<string, { job: string; status: string; n: number }>(),
    skipped: new Map<string, { job: string; reason: string; n: number }>(),
    retries: new Map<string, { job: string; n: number }>(),
    events: new Map<string, number>(),
  };
  new Counter({
    name: 'jobhost_runs_total',
    help: 'Finished runs by job and final status',
    labelNames: ['job', 'status'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { job, status, n } of tallies.runs.values()) this.inc({ job, status }, n);
    },
  });
  new Counter({
    name: 'jobhost_triggers_skipped_total',
    help: 'Refused triggers by job and reason (no run was created)',
    labelNames: ['job', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { job, reason, n } of tallies.skipped.values()) this.inc({ job, reason }, n);
    },
  });
  new Counter({
    name: 'jobhost_run_retries_total',
    help: 'Failed attempts that were retried, by job',
    labelNames: ['job'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { job, n } of tallies.retries.values()) this.inc({ job }, n);
    },
  });
  new Counter({
    name: 'jobhost_events_total',
    help: 'Bus events by type',
    labelNames: ['type'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [type, n] of tallies.events) this.inc({ type }, n);
    },
  });
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
  new Gauge({
    name: 'jobhost_up',
    help: '1 while the host is running (not starting or stopping)',
    registers: [registry],
    collect() {
      this.set(host.state === 'running' ? 1 : 0);
    },
  });

  const countRun = (job: string, status: string): void => {
    const key = `${job} ${status}`;
    const tally = tallies.runs.get(key);
    if (tally) tally.n++;
    else tallies.runs.set(key, { job, status, n: 1 });
  };

  const unsubscribe = host.on('*', (event) => {
    tallies.events.set(event.type, (tallies.events.get(event.type) ?? 0) + 1);
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
      case 'run.retrying': {
        const tally = tallies.retries.get(event.data.job);
        if (tally) tally.n++;
        else tallies.retries.set(event.data.job, { job: event.data.job, n: 1 });
        break;
      }
      case 'run.skipped': {
        const key = `${event.data.job} ${event.data.reason}`;
        const tally = tallies.skipped.get(key);
        if (tally) tally.n++;
        else tallies.skipped.set(key, { job: event.data.job, reason: event.data.reason, n: 1 });
        break;
      }
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
