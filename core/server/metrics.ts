import type { Registry } from 'prom-client';
import { eventHost } from '../contract/events.js';
import type { Host } from '../engine/host.js';
import type { EventLoopWatch } from './event-loop.js';
import type { BuiltRegistry, MetricCounts, Tallies } from './metrics-registry.js';
import { observeDuration } from './run-durations.js';

/**
 * `GET /metrics`: counts fed from bus events from the host's start, in plain maps and numbers;
 * gauges that mirror the host's state are read from it at scrape time instead of being kept in
 * step by hand. prom-client, which writes the exposition (`metrics-registry.ts`), loads with the
 * first scrape: never on the way to `/ready` (issue 26). Run durations are counted into their
 * histogram's buckets here too (`run-durations.ts`).
 */

/** What the WebSocket stream reports to the metrics. */
export interface StreamObserver {
  opened(): void;
  closed(): void;
  /** A client was cut off for not reading its messages. */
  cut(): void;
}

export interface Metrics extends StreamObserver {
  /** The prom-client registry of this host's metrics (loads prom-client on the first call). */
  registry(): Promise<Registry>;
  readonly contentType: string;
  /** The exposition text. */
  text(): Promise<string>;
  /** Unsubscribes from the bus. */
  close(): void;
}

/** prom-client's `Registry.PROMETHEUS_CONTENT_TYPE` (text format 0.0.4), known without loading it. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Counts one more under `a` (and `b`) in a tally map; the labels object is made once per label set. */
function tally(tallies: Tallies, labelNames: readonly [string] | readonly [string, string], a: string, b?: string): void {
  const key = b === undefined ? a : `${a} ${b}`;
  const found = tallies.get(key);
  if (found) {
    found.n++;
    return;
  }
  const labels: Record<string, string> = { [labelNames[0]]: a };
  if (labelNames[1] !== undefined && b !== undefined) labels[labelNames[1]] = b;
  tallies.set(key, { labels, n: 1 });
}

const RUN_LABELS = ['job', 'status'] as const;
const SKIP_LABELS = ['job', 'reason'] as const;
const JOB_LABEL = ['job'] as const;
const TYPE_LABEL = ['type'] as const;

export function createMetrics(host: Host, loop: EventLoopWatch): Metrics {
  const counts: MetricCounts = {
    runs: new Map(),
    skips: new Map(),
    retries: new Map(),
    events: new Map(),
    pluginErrors: 0,
    configErrors: 0,
    wsClients: 0,
    wsCutoffs: 0,
    durations: new Map(),
  };
  let loading: Promise<BuiltRegistry> | undefined;
  const load = (): Promise<BuiltRegistry> => {
    loading ??= Promise.all([import('prom-client'), import('./metrics-registry.js')]).then(([prom, { buildRegistry }]) =>
      buildRegistry(prom, host, loop, counts),
    );
    return loading;
  };

  const unsubscribe = host.on('*', (event) => {
    // Each host counts what it did: another host's events (cluster mode) are counted by that host's metrics.
    if (eventHost(event) !== undefined) return;
    tally(counts.events, TYPE_LABEL, event.type);
    switch (event.type) {
      case 'run.succeeded':
      case 'run.failed': {
        tally(counts.runs, RUN_LABELS, event.data.job, event.type === 'run.succeeded' ? 'succeeded' : 'failed');
        if (event.data.durationMs !== null) observeDuration(counts.durations, event.data.job, event.data.durationMs / 1000);
        break;
      }
      case 'run.canceled':
        tally(counts.runs, RUN_LABELS, event.data.job, 'canceled');
        break;
      case 'run.retrying':
        tally(counts.retries, JOB_LABEL, event.data.job);
        break;
      case 'run.skipped':
        tally(counts.skips, SKIP_LABELS, event.data.job, event.data.reason);
        break;
      case 'plugin.error':
        counts.pluginErrors++;
        break;
      case 'config.error':
        counts.configErrors++;
        break;
      default:
        break;
    }
  });

  return {
    registry: async () => (await load()).registry,
    contentType: CONTENT_TYPE,
    text: async () => (await load()).registry.metrics(),
    opened: () => void counts.wsClients++,
    closed: () => void counts.wsClients--,
    cut: () => void counts.wsCutoffs++,
    close: unsubscribe,
  };
}
