/**
 * HTTP trigger throughput (issue 5): autocannon, 50 connections, POST /jobs/noop/run with a JSON
 * body, against the jobhost server (disk store with fsync group commit, and in-memory) and a bare
 * fastify route of the same shape (JSON in, 202 JSON out), each in a child process, in one run;
 * plus the same engine behind a bare route, which separates the server layer's cost from the engine's.
 * Each server is warmed up with 2 s of the same load before its measured run.
 * Goal: jobhost ≥ 70% of bare, p99 ≤ 10 ms.
 * Run: `npm run bench -- http` (or `npx tsx bench/http.ts [seconds]`).
 */
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { fmt, header, mainThreadCpu, row, spawnServer } from './util.js';

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** The server's main-thread CPU per request, in µs: steadier than req/s on a shared machine. */
  cpuUs: number;
}

async function load(kind: string, seconds: number): Promise<Figures> {
  const server = await spawnServer(kind);
  const options = {
    url: `${server.url}/jobs/noop/run`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ params: { source: 'bench' } }),
    connections: 50,
  };
  try {
    // Steady state, not start-up: each server gets 2 s of the same load first (JIT, pools, caches).
    await autocannon({ ...options, duration: 2 });
    const cpu = mainThreadCpu(server.pid);
    const result = await autocannon({ ...options, duration: seconds });
    const cpuUs = ((mainThreadCpu(server.pid) - cpu) * 1e6) / Math.max(1, result.requests.total);
    return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors, cpuUs };
  } finally {
    await server.stop();
  }
}

/** The run with the median throughput of several. */
function median(runs: Figures[]): Figures {
  return [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!;
}

export async function httpBench(seconds = 10, rounds = 3): Promise<void> {
  header(`http: POST /jobs/noop/run, 50 connections, ${seconds}s each, median of ${rounds} interleaved rounds (autocannon)`);
  await load('bare-http', 2); // warm-up of the OS and autocannon itself
  // Interleaved, so drift in the machine's load touches every kind alike.
  const kinds = ['bare-http', 'jobhost-disk', 'jobhost-memory', 'bare-trigger'] as const;
  const seen: Record<(typeof kinds)[number], Figures[]> = { 'bare-http': [], 'jobhost-disk': [], 'jobhost-memory': [], 'bare-trigger': [] };
  for (let r = 0; r < rounds; r++) for (const kind of kinds) seen[kind].push(await load(kind, seconds));
  const [bare, disk, memory, engine] = kinds.map((k) => median(seen[k])) as [Figures, Figures, Figures, Figures];
  const spread = (k: (typeof kinds)[number]): string => seen[k].map((f) => fmt(f.rps / 1000, 1)).join('/');
  const line = (label: string, f: Figures, k: (typeof kinds)[number]): void =>
    row(
      label,
      `${fmt(f.rps)} req/s   p50 ${fmt(f.p50, 1)} ms   p99 ${fmt(f.p99, 1)} ms   ${fmt(f.cpuUs)} µs CPU/req   (rounds: ${spread(k)}k)${f.non2xx + f.errors > 0 ? `   (${f.non2xx} non-2xx, ${f.errors} errors)` : ''}`,
    );
  line('bare fastify route, same shape', bare, 'bare-http');
  line('jobhost, disk store (202 = fsynced)', disk, 'jobhost-disk');
  line('jobhost, in-memory store', memory, 'jobhost-memory');
  line('bare route calling host.trigger() (disk)', engine, 'bare-trigger');
  row('jobhost disk / bare (goal ≥ 0.70, p99 ≤ 10 ms)', fmt(disk.rps / bare.rps, 2));
  row('jobhost in-memory / bare', fmt(memory.rps / bare.rps, 2));
  row('jobhost disk / bare route + same engine', fmt(disk.rps / engine.rps, 2));
  row('bare / jobhost disk, main-thread CPU per request', fmt(bare.cpuUs / disk.cpuUs, 2));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await httpBench(Number(process.argv[2] ?? 10));
}
