/**
 * Engine throughput and latency (issue 3):
 * - N no-op runs through trigger() → run.succeeded with the store on disk (fsync group commit),
 *   the same with the in-memory store, and a bare loop awaiting the same no-op handler;
 * - trigger() → handler start latency on an idle host.
 * Run: `npm run bench -- engine` (or `npx tsx bench/engine.ts [runs] [rounds]`).
 */
import { pathToFileURL } from 'node:url';
import { type PumpCost, pumpCost, startLatency, throughput, WINDOW } from './runs.js';
import { fmt, header, row } from './util.js';

/** The round with the median throughput. */
function medianOf(costs: PumpCost[]): PumpCost {
  return [...costs].sort((a, b) => a.rate - b.rate)[Math.floor(costs.length / 2)]!;
}

async function bareLoop(runs: number): Promise<number> {
  const handler = async (): Promise<undefined> => undefined;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await handler();
  return (runs / (performance.now() - t0)) * 1000;
}

export async function engineBench(runs = 100_000, rounds = 3): Promise<void> {
  header(`engine: ${fmt(runs)} no-op runs, trigger → succeeded, ${WINDOW} in flight, median of ${rounds} interleaved rounds`);
  // Warm-up of both paths, so neither figure below pays for the JIT.
  await throughput('memory', 20_000);
  await throughput('disk', 20_000);
  // Interleaved rounds, a fresh host each, and the median of each kind: one round of each moved
  // the ratio by ±0.1 from run to run (the order, the heap the previous host left, the machine).
  const disks: PumpCost[] = [];
  const memories: PumpCost[] = [];
  for (let r = 0; r < rounds; r++) {
    disks.push(await pumpCost('disk', runs));
    memories.push(await pumpCost('memory', runs));
  }
  const diskCost = medianOf(disks);
  const memoryCost = medianOf(memories);
  const disk = diskCost.rate;
  const memory = memoryCost.rate;
  const bare = await bareLoop(runs);
  row('disk store (fsync group commit)', `${fmt(disk)} runs/s`);
  row('in-memory store', `${fmt(memory)} runs/s`);
  row('bare loop awaiting the same no-op handler', `${fmt(bare)} runs/s`);
  row('disk / bare loop', fmt(disk / bare, 4));
  row('disk / in-memory', fmt(disk / memory, 2));
  row('rounds: disk / in-memory (k runs/s)', `${disks.map((d) => fmt(d.rate / 1000, 1)).join('/')} / ${memories.map((m) => fmt(m.rate / 1000, 1)).join('/')}`);
  // CPU per run (the process's, the disk writes' threads included) moves less with a busy machine
  // than runs/s; the idle share is the main thread waiting, e.g. for a commit's fsync.
  row('CPU per run: disk / in-memory', `${fmt(diskCost.cpuUs, 1)} / ${fmt(memoryCost.cpuUs, 1)} µs`);
  row('event loop idle while pumping: disk / in-memory', `${fmt(diskCost.idle * 100)}% / ${fmt(memoryCost.idle * 100)}%`);
  const lat = await startLatency(2000);
  row('trigger → handler start, idle host, p50', `${fmt(lat.p50)} µs`);
  row('trigger → handler start, idle host, p99', `${fmt(lat.p99)} µs`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await engineBench(Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 3));
}
