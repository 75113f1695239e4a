/**
 * Durability and scale (issue 6): persisted throughput with an empty store and with 100,000 runs
 * already in history, start-up time and RSS with that history, trigger → start latency, and cron
 * lateness while 1,000 runs/s flow. Run: `npm run bench -- durability`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createHost, silentLogger } from '../core/index.js';
import { backlogBench } from './backlog.js';
import { noopHost, pump, startLatency, throughput } from './runs.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

const root = path.resolve(import.meta.dirname, '..');

/** Runs `startup-child.mjs` on `dir` with `entry` (the sources or the build) and reads its line. */
function startupChild(nodeArgs: string[], dir: string, entry: string): { startMs?: number; rss?: number; history?: number } {
  const child = spawnSync(process.execPath, [...nodeArgs, path.join(import.meta.dirname, 'startup-child.mjs'), dir, entry], { encoding: 'utf8' });
  return JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}') as { startMs?: number; rss?: number; history?: number };
}

async function cronLateness(seconds: number): Promise<number[]> {
  const { dir, remove } = benchDir();
  const host = createHost({ config: { store: { dir, keepRuns: 1_000_000 }, concurrency: 64 }, logger: silentLogger() });
  host.register({ name: 'load', concurrency: 64, handler: async () => undefined });
  for (let i = 0; i < 20; i++) host.register({ name: `tick-${i}`, schedule: '* * * * * *', handler: () => undefined });
  const lateness: number[] = [];
  host.on('run.queued', (e) => {
    if (e.data.source !== 'schedule') return;
    const at = Date.parse(e.data.runAt);
    lateness.push(at - Math.floor(at / 1000) * 1000);
  });
  await host.start();
  // 1,000 runs/s: 10 triggers every 10 ms.
  const load = setInterval(() => {
    for (let i = 0; i < 10; i++) void host.trigger('load');
  }, 10);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(load);
  await host.stop();
  remove();
  return lateness.sort((a, b) => a - b);
}

export async function durabilityBench(history = 100_000): Promise<void> {
  header('durability and scale');
  // Warm-up of both paths, so neither figure below pays for the JIT.
  await throughput('memory', 20_000);
  await throughput('disk', 20_000);
  const memory = await throughput('memory', 100_000);
  const disk = benchDir();
  const host = await noopHost(disk.dir, 'disk');
  await host.start();
  const empty = await pump(host, 100_000);
  row('persisted runs/s, empty store (fsync group commit)', `${fmt(empty)} runs/s (goal ≥ 50,000)`);
  row('same engine, in-memory store', `${fmt(memory)} runs/s`);
  row('disk / in-memory', `${fmt(empty / memory, 2)} (goal ≥ 0.5)`);
  // history: the 100k above plus more, so the next measurement starts with ≥ `history` runs
  const have = host.stats().store.historyRuns;
  if (have < history) await pump(host, history - have);
  const full = await pump(host, 100_000);
  row(`persisted runs/s with ${fmt(host.stats().store.historyRuns - 100_000)} runs in history`, `${fmt(full)} runs/s`);
  row('with history / empty store', `${fmt(full / empty, 2)} (goal ≥ 0.80)`);
  await host.stop();

  const startup = startupChild(['--import', 'tsx'], disk.dir, pathToFileURL(path.join(root, 'core', 'index.ts')).href);
  row(`start-up with ${fmt(startup.history ?? 0)} runs in history`, `${fmt(startup.startMs ?? NaN, 0)} ms (goal ≤ 1,000 ms)`);
  row('RSS after start-up', `${fmt(startup.rss ?? NaN, 0)} MB, from the sources under tsx (issue 26's goal ≤ 120 MB)`);
  // The package users install runs its build on plain node, without tsx: built here as `npm pack` builds it.
  execFileSync(process.execPath, [path.join(root, '.ci', 'build.mjs')], { cwd: root, stdio: 'ignore' });
  const built = startupChild([], disk.dir, pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  row('RSS after start-up, built package', `${fmt(built.rss ?? NaN, 0)} MB with ${fmt(built.history ?? 0)} runs in history (goal ≤ 120 MB)`);
  disk.remove();

  const lat = await startLatency(2000);
  row('trigger → handler start, idle host, p50 / p99', `${fmt(lat.p50)} µs / ${fmt(lat.p99)} µs (goal p50 ≤ 500 µs)`);

  const late = await cronLateness(15);
  row(
    `cron lateness under 1,000 runs/s (${late.length} fires), p50 / p99 / max`,
    `${fmt(percentile(late, 50))} / ${fmt(percentile(late, 99))} / ${fmt(late.at(-1) ?? NaN)} ms (goal p99 ≤ 10 ms)`,
  );

  await backlogBench(100_000);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await durabilityBench(Number(process.argv[2] ?? 100_000));
}
