/**
 * Handlers off the main thread (issue 17), in one run:
 * - persisted no-op runs/s (disk store, fsync group commit) with the handler in a worker thread
 *   (a plugin file) and inline (the same handler registered in code);
 * - trigger() → handler start on an idle host, the handler in a worker thread (it reads the time
 *   in its thread; both threads share the process's clock origin);
 * - HTTP trigger p99 and /health p99 while two handlers burn CPU without end, in worker threads
 *   and inline (as before this issue), each server in a child process;
 * - HTTP trigger throughput with the no-op in a worker thread and inline, against a bare fastify
 *   route of the same shape.
 * Goals: isolated ≥ 50,000 runs/s; start p50 ≤ 100 µs; p99s ≤ 20 ms while handlers burn CPU.
 * Run: `npm run bench -- isolation` (or `npx tsx bench/isolation.ts [runs] [seconds]`).
 */
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { createHost, silentLogger } from '../core/index.js';
import { registerFile, throughput, WINDOW } from './runs.js';
import { benchDir, fmt, header, mainThreadCpu, percentile, row, spawnServer } from './util.js';

/** trigger() → start of a handler in a worker thread, on an idle host, in µs. */
async function isolatedStartLatency(samples: number): Promise<{ p50: number; p99: number }> {
  const { dir, remove } = benchDir();
  const host = createHost({ config: { store: { dir } }, logger: silentLogger() });
  await registerFile(host, dir, 'probe', "export default { name: 'probe', handler: () => performance.timeOrigin + performance.now() };\n");
  await host.start();
  const out: number[] = [];
  for (let i = 0; i < samples + 50; i++) {
    const t0 = performance.timeOrigin + performance.now();
    const run = await host.wait((await host.trigger('probe')).runId);
    if (i >= 50) out.push(((run.result as number) - t0) * 1000); // the first ones start the threads
    await host.flush();
  }
  await host.stop();
  remove();
  out.sort((a, b) => a - b);
  return { p50: percentile(out, 50), p99: percentile(out, 99) };
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  cpuUs: number;
}

async function load(url: string, pid: number, path: string, method: 'GET' | 'POST', seconds: number): Promise<Load> {
  const options = {
    url: url + path,
    method,
    connections: 50,
    ...(method === 'POST' && { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ params: { source: 'bench' } }) }),
  };
  await autocannon({ ...options, duration: 2 });
  const cpu = mainThreadCpu(pid);
  const result = await autocannon({ ...options, duration: seconds });
  const cpuUs = ((mainThreadCpu(pid) - cpu) * 1e6) / Math.max(1, result.requests.total);
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.timeouts + result.non2xx, cpuUs };
}

/** One request at a time for `seconds`: each request's latency (ms), sorted. What a client alone sees. */
async function probe(url: string, path: string, method: 'GET' | 'POST', seconds: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + seconds * 1000;
  const init = method === 'POST' ? { method, headers: { 'content-type': 'application/json' }, body: '{}' } : { method };
  while (performance.now() < end) {
    const t0 = performance.now();
    const res = await fetch(url + path, init);
    await res.arrayBuffer();
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

interface Burn {
  trigger: Load;
  health: Load;
  /** Sequential probes: one client alone. */
  triggerAlone: number[];
  healthAlone: number[];
}

/** HTTP trigger and /health while two handlers burn CPU, on a server in a child process: under load, and one client alone. */
async function underBurn(kind: 'burn-worker' | 'burn-inline', seconds: number): Promise<Burn> {
  const server = await spawnServer(kind);
  try {
    await server.ask<{ burning: number }>({ cmd: 'burn', n: 2 });
    const healthAlone = await probe(server.url, '/health', 'GET', seconds);
    const triggerAlone = await probe(server.url, '/jobs/noop/run', 'POST', seconds);
    // Inline, a loaded server answers nothing within autocannon's 10 s timeout: the probes say it all.
    if (kind === 'burn-inline') return { trigger: NONE, health: NONE, triggerAlone, healthAlone };
    const trigger = await load(server.url, server.pid, '/jobs/noop/run', 'POST', seconds);
    const health = await load(server.url, server.pid, '/health', 'GET', seconds);
    return { trigger, health, triggerAlone, healthAlone };
  } finally {
    await server.stop();
  }
}

const NONE: Load = { rps: 0, p50: 0, p99: 0, errors: 0, cpuUs: 0 };

const showAlone = (ms: number[]): string =>
  `p50 ${fmt(percentile(ms, 50), 1)} ms   p99 ${fmt(percentile(ms, 99), 1)} ms   max ${fmt(ms.at(-1) ?? 0, 1)} ms   (${ms.length} requests, one at a time)`;

async function triggerLoad(kind: string, seconds: number): Promise<Load> {
  const server = await spawnServer(kind);
  try {
    return await load(server.url, server.pid, '/jobs/noop/run', 'POST', seconds);
  } finally {
    await server.stop();
  }
}

const show = (f: Load): string =>
  `${fmt(f.rps)} req/s   p50 ${fmt(f.p50, 1)} ms   p99 ${fmt(f.p99, 1)} ms   ${fmt(f.cpuUs)} µs CPU/req${f.errors > 0 ? `   (${f.errors} errors/timeouts)` : ''}`;

export async function isolationBench(runs = 100_000, seconds = 10, rounds = 3): Promise<void> {
  header(`isolation: handlers in worker threads vs inline (${fmt(runs)} no-op runs, ${WINDOW} in flight; HTTP ${seconds}s, 50 connections)`);
  await throughput('disk', 20_000, 'worker');
  await throughput('disk', 20_000, 'inline');
  const worker: number[] = [];
  const inline: number[] = [];
  // Interleaved, so drift in the machine's load touches both alike.
  for (let r = 0; r < rounds; r++) {
    worker.push(await throughput('disk', runs, 'worker'));
    inline.push(await throughput('disk', runs, 'inline'));
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  row('persisted runs/s, worker thread (median)', `${fmt(med(worker))} runs/s   (rounds: ${worker.map((x) => fmt(x / 1000, 1)).join('/')}k; goal ≥ 50,000)`);
  row('persisted runs/s, inline (median)', `${fmt(med(inline))} runs/s   (rounds: ${inline.map((x) => fmt(x / 1000, 1)).join('/')}k)`);
  row('worker / inline', fmt(med(worker) / med(inline), 2));
  const lat = await isolatedStartLatency(2000);
  row('trigger → start in a worker thread, p50', `${fmt(lat.p50)} µs (goal ≤ 100 µs)`);
  row('trigger → start in a worker thread, p99', `${fmt(lat.p99)} µs`);

  for (const kind of ['burn-worker', 'burn-inline'] as const) {
    const burn = await underBurn(kind, seconds);
    const where = kind === 'burn-worker' ? 'in worker threads' : 'inline (as before)';
    row(`2 handlers burning CPU ${where}, one client: POST /jobs/noop/run`, showAlone(burn.triggerAlone));
    row(`2 handlers burning CPU ${where}, one client: GET /health`, showAlone(burn.healthAlone));
    if (kind === 'burn-worker') {
      row(`2 handlers burning CPU ${where}, 50 connections: POST /jobs/noop/run`, show(burn.trigger));
      row(`2 handlers burning CPU ${where}, 50 connections: GET /health`, show(burn.health));
    }
  }

  const kinds = ['bare-http', 'jobhost-disk-worker', 'jobhost-disk'] as const;
  const seen: Record<(typeof kinds)[number], Load[]> = { 'bare-http': [], 'jobhost-disk-worker': [], 'jobhost-disk': [] };
  for (let r = 0; r < rounds; r++) for (const kind of kinds) seen[kind].push(await triggerLoad(kind, seconds));
  const median = (k: (typeof kinds)[number]): Load => [...seen[k]].sort((a, b) => a.rps - b.rps)[Math.floor(rounds / 2)]!;
  const [bare, isolated, inlined] = kinds.map(median) as [Load, Load, Load];
  row('bare fastify route, same shape', show(bare));
  row('jobhost, disk store, no-op in a worker thread', show(isolated));
  row('jobhost, disk store, no-op inline', show(inlined));
  row('worker / bare', fmt(isolated.rps / bare.rps, 2));
  row('inline / bare', fmt(inlined.rps / bare.rps, 2));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await isolationBench(Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 10));
}
