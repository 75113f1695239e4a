/**
 * Cluster mode, part 2 (issue 14), with three `jobhost start` processes on one Redis:
 * - schedule lateness: ten `* * * * * *` jobs on every host while no-op runs flow at a paced
 *   1,000 a second through the same hosts; per fire, when its run was added (`createdAt`) and
 *   when its handler started, after the fire time (from the run id);
 * - event fan-in: run.* events a second delivered to one WebSocket client on host A while runs
 *   go through all three hosts, against the same load on one local-backend host;
 * - the delay from a run's event on host B (its `at`) to its arrival at the client on A.
 * Run: `npm run bench -- cluster-fires` (or `npx tsx bench/cluster-fires.ts [seconds] [runs]`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { createHost, silentLogger } from '../core/index.js';
import { BIN, childEnv, createProject } from '../test/e2e/project.js';
import { spawnRedis } from '../test/redis.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

const TICKS = 10;
const NOOP = "export default { name: 'noop', concurrency: 10000, handler: async () => undefined };\n";
const tick = (i: number): string => `export default { name: 'tick-${i}', schedule: '* * * * * *', handler: async () => undefined };\n`;

interface HostProc {
  url: string;
  stop(): Promise<void>;
}

/** A `jobhost start` process with `files` in its plugins directory; resolves with its URL once it serves. */
async function startHost(config: object, files: Record<string, string>): Promise<HostProc> {
  const { dir, remove } = benchDir('jobhost-bench-fires-');
  createProject(dir, { server: { port: 0 }, concurrency: 10, ...config }, { examples: false });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, 'plugins', name), text);
  const child: ChildProcess = spawn(process.execPath, [BIN, 'start'], { cwd: dir, env: childEnv({ LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`host exited with ${code}`)));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /"url":"(http:[^"]+)"[^\n]*jobhost started/.exec(out);
      if (m) resolve(m[1]!);
    });
  });
  child.stdout!.resume();
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', () => {
          remove();
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Calls `trigger` `perSecond` times a second (in 10 ms steps, at most 256 in flight) for `ms`; resolves with the count accepted. */
async function pace(trigger: () => Promise<unknown>, perSecond: number, ms: number): Promise<number> {
  const t0 = performance.now();
  let sent = 0;
  let accepted = 0;
  const inFlight = new Set<Promise<void>>();
  while (performance.now() - t0 < ms) {
    const due = Math.floor(((performance.now() - t0) / 1000) * perSecond);
    while (sent < due && inFlight.size < 256) {
      sent++;
      const p: Promise<void> = trigger().then(
        () => {
          accepted++;
          inFlight.delete(p);
        },
        () => {
          inFlight.delete(p);
        },
      );
      inFlight.add(p);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inFlight);
  return accepted;
}

/** Waits (up to a minute) until no noop run waits or runs, so a phase's client sees only its own runs. */
async function idle(host: { stats(): { totals: { queued: number; delayed: number; running: number } } }): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { queued, delayed, running } = host.stats().totals;
    if (queued + delayed + running === 0 || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A trigger over HTTP. */
const httpTrigger = (url: string) => async (): Promise<void> => {
  const res = await fetch(`${url}/jobs/noop/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  await res.arrayBuffer();
  if (res.status !== 202) throw new Error(`HTTP ${res.status}`);
};

interface Arrival {
  type: string;
  host: string | undefined;
  delayMs: number;
  at: number;
}

/** A WebSocket client on `url` recording each run.* event with its arrival time. */
async function listen(url: string): Promise<{ arrivals: Arrival[]; close(): void }> {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/events?type=run.*`);
  const arrivals: Arrival[] = [];
  socket.on('message', (raw) => {
    const now = Date.now();
    const e = JSON.parse(String(raw)) as { type: string; at?: string; data?: { host?: string } };
    if (e.type === 'hello' || !e.at) return;
    arrivals.push({ type: e.type, host: e.data?.host, delayMs: now - Date.parse(e.at), at: performance.now() });
  });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return { arrivals, close: () => socket.terminate() };
}

/** Events a second at the client: from its first to its last arrival. */
function rate(arrivals: readonly Arrival[]): number {
  if (arrivals.length < 2) return 0;
  return (arrivals.length / (arrivals.at(-1)!.at - arrivals[0]!.at)) * 1000;
}

interface RunRecord {
  id: string;
  createdAt: string;
  startedAt: string | null;
}

export async function clusterFiresBench(seconds = 20, fanInRuns = 5000): Promise<void> {
  header(`cluster schedules and events: three jobhost processes on one Redis (appendfsync everysec), ${TICKS} * * * * * * jobs each`);
  const { dir, remove } = benchDir('jobhost-bench-fires-redis-');
  const redis = await spawnRedis(dir, { appendfsync: 'everysec' });
  const prefix = `fires${process.pid}`;
  const files: Record<string, string> = { 'noop.ts': NOOP };
  for (let i = 0; i < TICKS; i++) files[`tick-${i}.ts`] = tick(i);
  const hosts: HostProc[] = [];
  try {
    for (const id of ['a', 'b', 'c']) hosts.push(await startHost({ backend: { kind: 'redis', url: redis.url, prefix }, cluster: { id } }, files));
    const urls = hosts.map((h) => h.url);
    // The load comes from a producer in this process (a host of the cluster whose dispatcher is
    // paused): HTTP through the host processes would spend their CPU on requests, not on runs.
    const producer = createHost({ config: { backend: { kind: 'redis', url: redis.url, prefix }, cluster: { id: 'producer' } }, logger: silentLogger() });
    producer.register({ name: 'noop', concurrency: 10_000, handler: async () => undefined });
    producer.pause();
    await producer.start();
    const load = (): Promise<unknown> => producer.trigger('noop');

    // Schedule lateness while 1,000 runs/s flow.
    const from = Date.now() + 1000;
    const accepted = await pace(load, 1000, seconds * 1000);
    const to = Date.now() - 1000;
    await new Promise((r) => setTimeout(r, 1500));
    const added: number[] = [];
    const started: number[] = [];
    let twice = 0;
    for (let i = 0; i < TICKS; i++) {
      const page = (await (await fetch(`${urls[0]}/runs?job=tick-${i}&limit=1000`)).json()) as { items: RunRecord[] };
      const seen = new Set<number>();
      for (const r of page.items) {
        const fire = Number.parseInt(r.id.slice(0, 9), 36);
        if (fire < from || fire > to) continue;
        if (seen.has(fire)) twice++;
        seen.add(fire);
        added.push(Date.parse(r.createdAt) - fire);
        if (r.startedAt) started.push(Date.parse(r.startedAt) - fire);
      }
    }
    added.sort((x, y) => x - y);
    started.sort((x, y) => x - y);
    row('load', `${fmt(accepted / seconds)} no-op runs/s accepted over ${seconds} s (paced at 1,000/s)`);
    row('fires in the window', `${fmt(added.length)} (${TICKS} jobs × 1/s), fire times run twice: ${twice}`);
    row(
      'fire → run added, p50 / p99 / max',
      `${fmt(percentile(added, 50))} / ${fmt(percentile(added, 99))} / ${fmt(added.at(-1) ?? Number.NaN)} ms (goal p99 ≤ 20 ms)`,
    );
    row('fire → handler start, p50 / p99 / max', `${fmt(percentile(started, 50))} / ${fmt(percentile(started, 99))} / ${fmt(started.at(-1) ?? Number.NaN)} ms`);

    // Event fan-in to one client on A, runs through all three hosts: at full pace, then at a fifth.
    for (const perSecond of [1000, 200]) {
      await idle(producer);
      const client = await listen(urls[0]!);
      const sent = await pace(load, perSecond, (fanInRuns / perSecond) * 1000);
      await new Promise((r) => setTimeout(r, 2000));
      client.close();
      const fromB = client.arrivals
        .filter((a) => a.host === 'b')
        .map((a) => a.delayMs)
        .sort((x, y) => x - y);
      row(
        `fan-in at ${fmt(perSecond)} runs/s: events at the client on A`,
        `${fmt(client.arrivals.length)} run.* events for ${fmt(sent)} runs, ${fmt(rate(client.arrivals))}/s`,
      );
      row(
        `  event on B → client on A, p50 / p95 / max`,
        `${fmt(percentile(fromB, 50))} / ${fmt(percentile(fromB, 95))} / ${fmt(fromB.at(-1) ?? Number.NaN)} ms over ${fmt(fromB.length)} events (goal p95 ≤ 100 ms)`,
      );
    }
    await producer.stop({ graceMs: 0 });
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
    await redis.close();
    remove();
  }

  // The same loads on one host with the local backend (triggered over HTTP: nothing else can feed it).
  const local = await startHost({ store: { dir: 'data' } }, { 'noop.ts': NOOP });
  try {
    for (const perSecond of [1000, 200]) {
      const client = await listen(local.url);
      const sent = await pace(httpTrigger(local.url), perSecond, (fanInRuns / perSecond) * 1000);
      await new Promise((r) => setTimeout(r, 2000));
      client.close();
      const delays = client.arrivals.map((a) => a.delayMs).sort((x, y) => x - y);
      row(
        `one local host at ${fmt(perSecond)} runs/s: events at the client`,
        `${fmt(client.arrivals.length)} for ${fmt(sent)} runs, ${fmt(rate(client.arrivals))}/s; event → client p50 / p95 ${fmt(percentile(delays, 50))} / ${fmt(percentile(delays, 95))} ms`,
      );
    }
  } finally {
    await local.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await clusterFiresBench(Number(process.argv[2] ?? 20), Number(process.argv[3] ?? 5000));
}
