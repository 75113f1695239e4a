/**
 * The series behind the dashboard's charts (issue 15): what the index costs per finished run, what
 * `GET /stats/series` costs with 100,000 runs in history (against computing the same buckets by
 * scanning history, which is what the index spares), and reading history back into the index
 * after a restart. Run: `npm run bench -- series`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../core/contract/clock.js';
import { Bus } from '../core/engine/bus.js';
import { SeriesIndex } from '../core/engine/series.js';
import { createHost, createServer, type Host, silentLogger } from '../core/index.js';
import { noopHost, pump } from './runs.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

/** ns per finished run: four run events through a bus with the index listening, minus without it. */
function indexCost(runs: number): { withIndex: number; without: number } {
  const time = (withIndex: boolean): number => {
    const bus = new Bus({ clock: systemClock, logger: silentLogger(), capacity: 10_000 });
    const index = withIndex ? new SeriesIndex({ bus, clock: systemClock, logger: silentLogger(), waiting: () => 3 }) : undefined;
    const jobs = Array.from({ length: 20 }, (_, i) => `job-${i}`);
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) {
      const job = jobs[i % jobs.length]!;
      const runId = `run-${i}`;
      bus.emit('run.queued', { job, runId, source: 'api', queue: 'default', priority: 0, key: null, runAt: '', delayed: false });
      bus.emit('run.started', { job, runId, attempt: 1 });
      if (i % 10 === 0) bus.emit('run.failed', { job, runId, attempt: 1, durationMs: (i * 7919) % 5000, error: { code: 'E', message: 'm' } });
      else bus.emit('run.succeeded', { job, runId, attempt: 1, durationMs: (i * 7919) % 5000, result: null });
    }
    const ns = ((performance.now() - t0) * 1e6) / runs;
    index?.close();
    return ns;
  };
  time(true);
  time(false); // warm-up
  const withIndex = Math.min(time(true), time(true), time(true));
  const without = Math.min(time(false), time(false), time(false));
  return { withIndex, without };
}

/** The 1 h / 24 h / 7 d buckets computed the other way: every run in history read, newest first. */
async function scan(host: Host): Promise<number> {
  const counts = new Map<number, number>();
  let before: string | undefined;
  let n = 0;
  for (;;) {
    const page = await host.runs({ limit: 1000, ...(before !== undefined && { before }) });
    for (const run of page.items) {
      if (run.endedAt === null) continue;
      const bucket = Math.floor(Date.parse(run.endedAt) / 7_200_000);
      counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
      n++;
    }
    if (!page.next) return n;
    before = page.next;
  }
}

export async function seriesBench(history = 100_000): Promise<void> {
  header('series: the index behind the charts');
  const cost = indexCost(200_000);
  row('bus events of one run, without the index', `${fmt(cost.without)} ns/run`);
  row('the same with the series index listening', `${fmt(cost.withIndex)} ns/run`);
  row('index cost per finished run', `${fmt(cost.withIndex - cost.without)} ns`);

  const { dir, remove } = benchDir();
  const host = await noopHost(dir, 'disk');
  await host.start();
  await pump(host, history);
  row('runs in history', fmt(host.stats().store.historyRuns));

  const calls = (fn: () => unknown, n: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      fn();
      out.push((performance.now() - t0) * 1000);
    }
    return out.sort((a, b) => a - b);
  };
  for (const window of ['1h', '24h', '7d'] as const) {
    const us = calls(() => host.series(window), 2000);
    row(`host.series('${window}'), p50 / p99`, `${fmt(us[1000]!, 1)} / ${fmt(percentile(us, 99), 1)} µs`);
  }

  const server = createServer(host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  const http: number[] = [];
  for (let i = 0; i < 1500; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/stats/series?window=7d`);
    await res.arrayBuffer();
    if (i >= 500) http.push(performance.now() - t0);
  }
  http.sort((a, b) => a - b);
  row('GET /stats/series?window=7d over HTTP, p50 / p99', `${fmt(percentile(http, 50), 2)} / ${fmt(percentile(http, 99), 2)} ms`);
  await server.close();

  const t0 = performance.now();
  const scanned = await scan(host);
  const scanMs = performance.now() - t0;
  row(
    `the same buckets by scanning history (${fmt(scanned)} runs)`,
    `${fmt(scanMs)} ms (the index answers ${fmt(scanMs / (percentile(http, 50) || 1))}× faster)`,
  );
  await host.stop();

  // A restart: the index is read back from history in the background.
  const lag = monitorEventLoopDelay({ resolution: 5 });
  const again = createHost({ config: { store: { dir, keepRuns: 1_000_000 } }, logger: silentLogger() });
  const t1 = performance.now();
  await again.start();
  lag.enable();
  const total = (): number => again.series('7d').buckets.reduce((n, b) => n + b.succeeded, 0);
  while (total() < history) await new Promise((r) => setTimeout(r, 5));
  lag.disable();
  row(`read ${fmt(history)} runs back into the index after a start`, `${fmt(performance.now() - t1)} ms`);
  row('event-loop delay meanwhile, p99 / max', `${fmt(lag.percentile(99) / 1e6, 1)} / ${fmt(lag.max / 1e6, 1)} ms`);
  await again.stop();
  remove();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await seriesBench(Number(process.argv[2] ?? 100_000));
}
