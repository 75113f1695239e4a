/**
 * A large backlog (issue 24, limits): how long the main thread stalls while the store writes a
 * checkpoint with 100,000 runs waiting, and what a history page costs then. The event loop's
 * delay is sampled (1 ms resolution) while a steady flow of no-op runs passes the backlog and
 * checkpoints happen (one per 2,000 finished runs here); its max is the longest stall, a
 * checkpoint's. The same flow with no backlog is the baseline. Run: `npm run bench -- durability` (or this file).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { createHost, silentLogger } from '../core/index.js';
import { pump, WINDOW } from './runs.js';
import { benchDir, fmt, percentile, row } from './util.js';

interface Stall {
  p99: number;
  max: number;
  /** `host.runs({ limit: 50 })`, ms, p50 of 20. */
  pageMs: number;
}

/** Runs per second flowing past the backlog, and how many finished runs make a checkpoint. */
const RATE = 1000;
const CHECKPOINT_RUNS = 2000;

async function flowPast(backlog: number, seconds: number): Promise<Stall> {
  const { dir, remove } = benchDir();
  const host = createHost({
    config: { store: { dir, keepRuns: 1_000_000 }, concurrency: 10_000, limits: { maxQueued: 10_000_000 } },
    storeOptions: { checkpointRuns: CHECKPOINT_RUNS },
    logger: silentLogger(),
  });
  host.register({ name: 'noop', concurrency: 10_000, handler: async () => undefined });
  host.register({ name: 'later', overlap: 'allow', handler: () => undefined });
  await host.start();
  let sent = 0;
  const producer = async (): Promise<void> => {
    while (sent < backlog) {
      sent++;
      await host.trigger('later', { delay: '1d' });
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, producer));
  await host.flush();
  await pump(host, 2 * CHECKPOINT_RUNS); // warm: the JIT, and a checkpoint behind the fill
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  // A steady flow (10 triggers every 10 ms): a checkpoint every CHECKPOINT_RUNS finished runs.
  const load = setInterval(() => {
    for (let i = 0; i < RATE / 100; i++) void host.trigger('noop');
  }, 10);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(load);
  delay.disable();
  const pages: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await host.runs({ limit: 50 });
    pages.push(performance.now() - t0);
  }
  await host.stop();
  remove();
  return {
    p99: delay.percentile(99) / 1e6,
    max: delay.max / 1e6,
    pageMs: percentile(
      pages.sort((a, b) => a - b),
      50,
    ),
  };
}

export async function backlogBench(waiting = 100_000, seconds = 10): Promise<void> {
  const base = await flowPast(0, seconds);
  const full = await flowPast(waiting, seconds);
  const flow = `${fmt(RATE)} runs/s for ${seconds} s, a checkpoint per ${fmt(CHECKPOINT_RUNS)} finished`;
  row(`event-loop delay, ${flow}, no backlog: p99 / max`, `${fmt(base.p99, 1)} / ${fmt(base.max, 1)} ms`);
  row(`same with ${fmt(waiting)} runs waiting (each checkpoint writes them): p99 / max`, `${fmt(full.p99, 1)} / ${fmt(full.max, 1)} ms (goal p99 ≤ 20 ms)`);
  row(`GET /runs page of 50 with ${fmt(waiting)} waiting, p50`, `${fmt(full.pageMs, 2)} ms (no backlog: ${fmt(base.pageMs, 2)} ms)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await backlogBench(Number(process.argv[2] ?? 100_000));
}
