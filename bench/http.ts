/**
 * HTTP trigger throughput (issue 5): autocannon, 50 connections, POST /jobs/noop/run with a JSON
 * body, against the jobhost server (disk store with fsync group commit, and in-memory) and a bare
 * fastify route of the same shape (JSON in, 202 JSON out), each in a child process, in one run;
 * plus the same engine behind a bare route, which separates the server layer's cost from the engine's.
 * Goal: jobhost ≥ 70% of bare, p99 ≤ 10 ms.
 * Run: `npm run bench -- http` (or `npx tsx bench/http.ts [seconds]`).
 */
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { fmt, header, row, spawnServer } from './util.js';

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(kind: string, seconds: number): Promise<Figures> {
  const server = await spawnServer(kind);
  try {
    const result = await autocannon({
      url: `${server.url}/jobs/noop/run`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ params: { source: 'bench' } }),
      connections: 50,
      duration: seconds,
    });
    return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
  } finally {
    await server.stop();
  }
}

export async function httpBench(seconds = 10): Promise<void> {
  header(`http: POST /jobs/noop/run, 50 connections, ${seconds}s each (autocannon)`);
  await load('bare-http', 2); // warm-up: the OS and autocannon, not the servers (fresh processes)
  const bare = await load('bare-http', seconds);
  const disk = await load('jobhost-disk', seconds);
  const memory = await load('jobhost-memory', seconds);
  const engine = await load('bare-trigger', seconds);
  const line = (label: string, f: Figures): void =>
    row(label, `${fmt(f.rps)} req/s   p50 ${fmt(f.p50, 1)} ms   p99 ${fmt(f.p99, 1)} ms${f.non2xx + f.errors > 0 ? `   (${f.non2xx} non-2xx, ${f.errors} errors)` : ''}`);
  line('bare fastify route, same shape', bare);
  line('jobhost, disk store (202 = fsynced)', disk);
  line('jobhost, in-memory store', memory);
  line('bare route calling host.trigger() (disk)', engine);
  row('jobhost disk / bare', fmt(disk.rps / bare.rps, 2));
  row('jobhost in-memory / bare', fmt(memory.rps / bare.rps, 2));
  row('jobhost disk / bare route + same engine', fmt(disk.rps / engine.rps, 2));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await httpBench(Number(process.argv[2] ?? 10));
}
