import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHost, type Host, silentLogger } from '../core/index.js';
import { loadPluginModule } from '../core/loader/plugin-module.js';
import { benchDir, percentile } from './util.js';

/** Shared by the engine and durability benchmarks: a no-op host, a pump, a latency probe. */

/** Triggers kept in flight by the pump: each producer awaits its acknowledgement (durable). */
export const WINDOW = 1024;

/**
 * A host with one no-op job (`noop`), its store on disk or in memory, history kept. The job is
 * registered in code (inline), or from a plugin file (`worker`: its handler runs in a thread).
 */
export async function noopHost(dir: string, store: 'disk' | 'memory', isolation: 'inline' | 'worker' = 'inline'): Promise<Host> {
  const host = createHost({ store, config: { store: { dir, keepRuns: 1_000_000 }, concurrency: 10_000 }, logger: silentLogger() });
  if (isolation === 'worker') await registerFile(host, dir, 'noop', NOOP_FILE);
  else host.register({ name: 'noop', concurrency: 10_000, handler: async () => undefined });
  return host;
}

/** Runs `runs` no-op jobs through trigger() → run.succeeded on a started host; returns runs/s. */
export async function pump(host: Host, runs: number): Promise<number> {
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const off = host.on('run.succeeded', () => {
    if (++done === runs) allDone();
  });
  const t0 = performance.now();
  let sent = 0;
  const producer = async (): Promise<void> => {
    while (sent < runs) {
      sent++;
      await host.trigger('noop');
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, producer));
  await finished;
  off();
  await host.flush();
  return (runs / (performance.now() - t0)) * 1000;
}

/** A fresh host, `runs` no-op runs, stopped and removed: runs/s. */
export async function throughput(store: 'disk' | 'memory', runs: number, isolation: 'inline' | 'worker' = 'inline'): Promise<number> {
  return (await pumpCost(store, runs, isolation)).rate;
}

/** What a pump cost: runs/s, the process's CPU per run (µs), and the share of the pump's time the event loop sat idle (waiting for the disk, or for nothing). */
export interface PumpCost {
  rate: number;
  cpuUs: number;
  idle: number;
}

/** As `throughput`, with the pump's CPU per run and event-loop idle share. */
export async function pumpCost(store: 'disk' | 'memory', runs: number, isolation: 'inline' | 'worker' = 'inline'): Promise<PumpCost> {
  const { dir, remove } = benchDir();
  const host = await noopHost(dir, store, isolation);
  await host.start();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const rate = await pump(host, runs);
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  await host.stop();
  remove();
  return { rate, cpuUs: (cpu.user + cpu.system) / runs, idle: 1 - elu.utilization };
}

/** trigger() → handler start on an idle host (the store flushed between samples), in µs. */
export async function startLatency(samples: number): Promise<{ p50: number; p99: number }> {
  const { dir, remove } = benchDir();
  const host = createHost({ config: { store: { dir } }, logger: silentLogger() });
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
    out.push((started - t0) * 1000);
    await ack;
    await host.flush();
  }
  await host.stop();
  remove();
  out.sort((a, b) => a - b);
  return { p50: percentile(out, 50), p99: percentile(out, 99) };
}

/**
 * Registers `source` (a plugin file's text, written under `dir/plugins`) on `host` the way the
 * plugins directory does: its handler runs in a worker thread unless the plugin says inline.
 */
export async function registerFile(host: Host, dir: string, name: string, source: string): Promise<void> {
  const plugins = path.join(dir, 'plugins');
  mkdirSync(plugins, { recursive: true });
  const file = path.join(plugins, `${name}.mjs`);
  writeFileSync(file, source);
  const mod = await loadPluginModule(file, plugins, 10_000);
  host.register(mod.exports['default'], { file: `plugins/${name}.mjs`, source: mod.source });
}

/** The no-op job as a plugin file: `noop` in a worker thread. */
export const NOOP_FILE = "export default { name: 'noop', concurrency: 10000, handler: async () => undefined };\n";
