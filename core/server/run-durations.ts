import type { Metric } from 'prom-client';

/**
 * `jobhost_run_duration_seconds`: counted in plain arrays as runs end, written at scrape time
 * the way prom-client writes a histogram of its own (the same lines, in the same order). A
 * prom-client `observe()` per finished run (a labels object, its hash string, a bucket lookup by
 * a number-keyed property) was ~1 µs of an HTTP trigger's main-thread time on a loaded machine
 * (issue 26); this is an array index. prom-client itself still loads only with the first scrape.
 */

const NAME = 'jobhost_run_duration_seconds';
const HELP = 'Run duration (first start to end) of succeeded and failed runs, by job';
const BUCKETS: readonly number[] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** One job's durations: how many fell at or under each bound and over the one before (past the last: only in `count`). */
interface Tally {
  readonly job: string;
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** The durations by job, in the order each job first ended a run. */
export type DurationTallies = Map<string, Tally>;

export function observeDuration(tallies: DurationTallies, job: string, seconds: number): void {
  if (!Number.isFinite(seconds)) return;
  let tally = tallies.get(job);
  if (tally === undefined) {
    tally = { job, buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
    tallies.set(job, tally);
  }
  let i = 0;
  while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
  if (i < BUCKETS.length) tally.buckets[i]!++;
  tally.sum += seconds;
  tally.count++;
}

interface Value {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

/** One value as prom-client's histogram makes it (`setValuePair`): the same keys in the same order. */
const pair = (labels: Value['labels'], value: number, metricName: string, exemplar: null | undefined, sharedLabels: Value['sharedLabels']): Value => ({
  labels,
  sharedLabels,
  value,
  metricName,
  exemplar,
});

/** prom-client's histogram values: per job, the cumulative buckets, `+Inf`, the sum and the count. */
function values(tallies: DurationTallies): Value[] {
  const out: Value[] = [];
  for (const { job, buckets, sum, count } of tallies.values()) {
    const shared = { job };
    let acc = 0;
    for (let i = 0; i < BUCKETS.length; i++) {
      acc += buckets[i]!;
      out.push(pair({ le: BUCKETS[i]! }, acc, `${NAME}_bucket`, null, shared));
    }
    out.push(
      pair({ le: '+Inf' }, count, `${NAME}_bucket`, null, shared),
      pair({}, sum, `${NAME}_sum`, undefined, shared),
      pair({}, count, `${NAME}_count`, undefined, shared),
    );
  }
  return out;
}

/** prom-client's `splayLabels` (what `get()` gives): the shared labels folded into each value's own. */
function splayed(value: Value): Omit<Value, 'sharedLabels'> {
  const { sharedLabels, labels, ...rest } = value;
  return { ...rest, labels: { ...labels, ...sharedLabels } };
}

/** Registers the histogram in a registry: what prom-client's registry reads of a metric (`get`, `getForPromString`, `reset`). */
export function registerDurations(registry: { registerMetric(metric: Metric): void }, tallies: DurationTallies): void {
  const data = (splay: boolean) => ({
    name: NAME,
    help: HELP,
    type: 'histogram',
    aggregator: 'sum',
    values: splay ? values(tallies).map(splayed) : values(tallies),
  });
  const metric = {
    name: NAME,
    help: HELP,
    type: 'histogram',
    aggregator: 'sum',
    getForPromString: async () => data(false),
    get: async () => data(true),
    reset: () => tallies.clear(),
  };
  registry.registerMetric(metric as unknown as Metric);
}
