/**
 * Engine throughput and latency (issue 3):
 * - N no-op runs through trigger() → run.succeeded with the store on disk (fsync group commit),
 *   the same with the in-memory store, and a bare loop awaiting the same no-op handler;
 * - trigger() → handler start latency on an idle host.
 * Run: `npm run bench -- engine` (or `npx tsx bench/engine.ts [runs] [rounds]`).
 */
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type PumpCost, pumpCost, startLatency, throughput, WINDOW } from './runs.js';
import { fmt, header, row } from './util.js';

/** The round with the median throughput. */
function medianOf(costs: PumpCost[]): PumpCost {
  return [...costs].sort((a, b) => a.rate - b.rate)[Math.floor(costs.length / 2)]!;
}

/** One measured round in a fresh process: the JIT warmed up there (20,000 runs of each kind), then `runs` on a fresh host. */
function roundInChild(store: 'disk' | 'memory', runs: number): Promise<PumpCost> {
  const child = fork(fileURLToPath(import.meta.url), ['--round', store, String(runs)], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise<PumpCost>((resolve, reject) => {
    child.once('message', (cost) => resolve(cost as PumpCost));
    child.once('exit', (code) => reject(new Error(`engine round (${store}) exited with ${code} before its figure`)));
  });
}

async function bareLoop(runs: number): Promise<number> {
  const handler = async (): Promise<undefined> => undefined;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await handler();
  return (runs / (performance.now() - t0)) * 1000;
}

export async function engineBench(runs = 100_000, rounds = 3): Promise<void> {
  header(`engine: ${fmt(runs)} no-op runs, trigger → succeeded, ${WINDOW} in flight, median of ${rounds} interleaved rounds, each in a process of its own`);
  // Interleaved rounds, each in a process of its own (warmed up there), and the median of each
  // kind. Rounds in one process measured each other: an in-memory host keeps every run it made,
  // and the major collections of those, once it had stopped, landed in the next (disk) round,
  // while an in-memory round after a disk one found the heap grown; one round of each so moved
  // the ratio by ±0.1 from run to run.
  const disks: PumpCost[] = [];
  const memories: PumpCost[] = [];
  for (let r = 0; r < rounds; r++) {
    disks.push(await roundInChild('disk', runs));
    memories.push(await roundInChild('memory', runs));
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
  if (process.argv[2] === '--round') {
    // One round of `roundInChild`: warmed up here, then measured, and its figure sent back.
    await throughput('memory', 20_000);
    await throughput('disk', 20_000);
    const cost = await pumpCost(process.argv[3] as 'disk' | 'memory', Number(process.argv[4]));
    process.send!(cost, () => process.exit(0));
  } else {
    await engineBench(Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 3));
  }
}
