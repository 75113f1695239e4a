/**
 * Engine throughput and latency (issue 3):
 * - N no-op runs through trigger() → run.succeeded with the store on disk (fsync group commit),
 *   the same with the in-memory store, and a bare loop awaiting the same no-op handler;
 * - trigger() → handler start latency on an idle host.
 * Run: `npm run bench -- engine` (or `npx tsx bench/engine.ts [runs]`).
 */
import { pathToFileURL } from 'node:url';
import { createHost, silentLogger, type Host } from '../core/index.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

const WINDOW = 1024;

async function throughput(store: 'disk' | 'memory', runs: number): Promise<number> {
  const { dir, remove } = benchDir();
  const host = createHost({
    store,
    config: { store: { dir, keepRuns: runs * 2 }, concurrency: 10_000 },
    logger: silentLogger(),
  });
  host.register({ name: 'noop', concurrency: 10_000, handler: async () => undefined });
  await host.start();
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  host.on('run.succeeded', () => {
    if (++done === runs) allDone();
  });
  const t0 = performance.now();
  let sent = 0;
  // WINDOW producers, each triggering and awaiting its acknowledgement (the run is durable).
  const producer = async (): Promise<void> => {
    while (sent < runs) {
      sent++;
      await host.trigger('noop');
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, producer));
  await finished;
  const elapsed = performance.now() - t0;
  await host.stop();
  remove();
  return (runs / elapsed) * 1000;
}

async function bareLoop(runs: number): Promise<number> {
  const handler = async (): Promise<undefined> => undefined;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await handler();
  return (runs / (performance.now() - t0)) * 1000;
}

async function latency(samples: number): Promise<{ p50: number; p99: number }> {
  const { dir, remove } = benchDir();
  const host: Host = createHost({ config: { store: { dir } }, logger: silentLogger() });
  let started = 0;
  let onStart: (() => void) | undefined;
  host.register({
    name: 'probe',
    handler: () => {
      started = performance.now();
      onStart?.();
    },
  });
  await host.start();
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const ran = new Promise<void>((resolve) => (onStart = resolve));
    const t0 = performance.now();
    const ack = host.trigger('probe');
    await ran;
    out.push(started - t0);
    await ack;
    await host.flush(); // idle again before the next sample
  }
  await host.stop();
  remove();
  out.sort((a, b) => a - b);
  return { p50: percentile(out, 50), p99: percentile(out, 99) };
}

export async function engineBench(runs = 100_000): Promise<void> {
  header(`engine: ${fmt(runs)} no-op runs, trigger → succeeded, ${WINDOW} in flight`);
  await throughput('memory', 5_000); // warm-up
  const disk = await throughput('disk', runs);
  const memory = await throughput('memory', runs);
  const bare = await bareLoop(runs);
  row('disk store (fsync group commit)', `${fmt(disk)} runs/s`);
  row('in-memory store', `${fmt(memory)} runs/s`);
  row('bare loop awaiting the same no-op handler', `${fmt(bare)} runs/s`);
  row('disk / bare loop', fmt(disk / bare, 4));
  row('disk / in-memory', fmt(disk / memory, 2));
  const lat = await latency(2000);
  row('trigger → handler start, idle host, p50', `${fmt(lat.p50 * 1000)} µs`);
  row('trigger → handler start, idle host, p99', `${fmt(lat.p99 * 1000)} µs`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await engineBench(Number(process.argv[2] ?? 100_000));
}
