import { isDeepStrictEqual } from 'node:util';
import * as prom from 'prom-client';
import t from 'tap';
import { type DurationTallies, observeDuration, registerDurations } from '../../../core/server/run-durations.js';

/** Our histogram and prom-client's own, in registries of a content type, fed the same observations by `feed`. */
function pairOf(contentType: prom.RegistryContentType) {
  const theirs = new prom.Registry<prom.RegistryContentType>();
  theirs.setContentType(contentType);
  const histogram = new prom.Histogram({
    name: 'jobhost_run_duration_seconds',
    help: 'Run duration (first start to end) of succeeded and failed runs, by job',
    labelNames: ['job'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [theirs],
  });
  const tallies: DurationTallies = new Map();
  const ours = new prom.Registry<prom.RegistryContentType>();
  ours.setContentType(contentType);
  registerDurations(ours, tallies);
  const feed = (job: string, seconds: number): void => {
    histogram.observe({ job }, seconds);
    observeDuration(tallies, job, seconds);
  };
  return { ours, theirs, feed };
}

// Every bound exactly, between bounds, 0, negative, past the last bound; three jobs interleaved.
const seconds = [0, -1, 0.005, 0.0051, 0.01, 0.3, 1, 2.5, 7, 3600, 3600.5, 1e9, 0.25, 59.99, 60, 900];
const jobOf = (i: number): string => ['b-job', 'a-job', 'c "quoted"'][i % 3]!;

t.test('run durations are written as prom-client writes its own histogram of the same observations', async (t) => {
  const { ours, theirs, feed } = pairOf(prom.Registry.PROMETHEUS_CONTENT_TYPE);
  t.equal(await ours.metrics(), await theirs.metrics(), 'no runs yet: the same header');
  for (const [i, s] of seconds.entries()) feed(jobOf(i), s);
  const text = await ours.metrics();
  t.equal(text, await theirs.metrics(), 'the same exposition, line for line');
  t.match(text, /^jobhost_run_duration_seconds_bucket\{le="0\.005",job="b-job"\} 1$/m);
  t.match(text, /^jobhost_run_duration_seconds_count\{job="a-job"\} 5$/m);
  t.ok(isDeepStrictEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON()), 'the same JSON');
  ours.resetMetrics();
  theirs.resetMetrics();
  t.equal(await ours.metrics(), await theirs.metrics(), 'a reset empties both');
});

t.test('the same in OpenMetrics', async (t) => {
  const { ours, theirs, feed } = pairOf(prom.Registry.OPENMETRICS_CONTENT_TYPE);
  for (const [i, s] of seconds.entries()) feed(jobOf(i), s);
  t.equal(await ours.metrics(), await theirs.metrics());
});
