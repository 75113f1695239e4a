/**
 * Cluster mode (issue 13): no-op runs/s drained by 1, 2 and 3 `jobhost start` processes on one
 * Redis, against bare BullMQ (`Queue.addBulk` + a `Worker` per process at the same concurrency)
 * on the same Redis in the same run; trigger → handler start on an idle cluster against
 * `Queue.add` → processor start. Runs are added with the queue paused, the hosts (or workers)
 * started, then the queue resumed: the figure is how fast they empty it, start-up excluded.
 * Rounds are interleaved and the median is printed (the machine is shared and noisy).
 * Run: `npm run bench -- cluster` (or `npx tsx bench/cluster.ts [runs] [rounds] [everysec|always]`).
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createHost, type Host, silentLogger } from '../core/index.js';
import { BIN, childEnv, createProject } from '../test/e2e/project.js';
import { spawnRedis } from '../test/redis.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

/** Slots per process, for jobhost hosts and bare workers alike. */
const CONCURRENCY = 10;
/**
 * Inline, like the bare Worker's processor (it runs in its process's own thread): the comparison
 * is of the host's layer over BullMQ. The hop to a worker thread costs the same on either backend
 * and `npm run bench -- isolation` measures it.
 */
const NOOP = "export default { name: 'noop', concurrency: 10000, isolation: 'inline', handler: async () => undefined };\n";

interface Proc {
  pid: number;
  stop(): Promise<void>;
}

/** CPU seconds (user + system, all threads) a process has used so far (Linux /proc). */
function processCpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Empties the queue with the processes up; returns the time it took and their and Redis's CPU per run (µs). */
async function measure(queue: Queue, procs: Proc[], redisPid: number, runs: number): Promise<{ ms: number; cpuUs: number; redisUs: number }> {
  const cpu0 = procs.reduce((sum, p) => sum + processCpu(p.pid), 0);
  const redis0 = processCpu(redisPid);
  const ms = await drain(queue);
  const cpu1 = procs.reduce((sum, p) => sum + processCpu(p.pid), 0);
  const redis1 = processCpu(redisPid);
  return { ms, cpuUs: ((cpu1 - cpu0) * 1e6) / runs, redisUs: ((redis1 - redis0) * 1e6) / runs };
}

/** A `jobhost start` process in a project of its own on the cluster's Redis; resolves once it serves. */
async function startHost(url: string, prefix: string, id: string): Promise<Proc> {
  const { dir, remove } = benchDir('jobhost-bench-cluster-');
  createProject(dir, { server: { port: 0 }, concurrency: CONCURRENCY, backend: { kind: 'redis', url, prefix }, cluster: { id } }, { examples: false });
  writeFileSync(path.join(dir, 'plugins', 'noop.ts'), NOOP);
  // BENCH_HOST_ARGS: node flags for the host processes, e.g. '--cpu-prof --cpu-prof-dir=/tmp/p'.
  const nodeArgs = process.env['BENCH_HOST_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'start'], { cwd: dir, env: childEnv({ LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`host ${id} exited with ${code}`)));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('jobhost started')) resolve();
    });
  });
  return { pid: child.pid!, stop: () => stopChild(child, 'SIGTERM').then(remove) };
}

async function startBareWorker(url: string, prefix: string): Promise<Proc> {
  const child = fork(fileURLToPath(new URL('./cluster-worker.ts', import.meta.url)), [url, prefix, 'noop', String(CONCURRENCY)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bare worker exited with ${code}`)));
    child.once('message', () => resolve());
  });
  return {
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', () => resolve());
        child.send('stop');
      }),
  };
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Waits until the queue holds nothing waiting, delayed or running; resolves with the time it took (ms). */
async function drain(queue: Queue): Promise<number> {
  const t0 = performance.now();
  await queue.resume();
  for (;;) {
    const c = await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed');
    if (Object.values(c).every((n) => n === 0)) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Round {
  rate: number;
  adds: number;
  /** Bare rounds: `Queue.add` with 256 in flight, one job a call (jobs/s). */
  singleAdds?: number;
  /** CPU of the host (or bare worker) processes per run, in µs: steadier than runs/s on a shared machine. */
  cpuUs: number;
  /** redis-server's CPU per run meanwhile, in µs: with two cores shared by Redis and the processes, the other bound. */
  redisUs: number;
}

/**
 * `hosts` host processes start on a paused queue (so their start-up work, such as reading history
 * back for the series index, is not counted), `runs` triggers go in through an in-process host,
 * then the queue is resumed and the processes empty it.
 */
async function jobhostRound(url: string, redisPid: number, prefix: string, hosts: number, runs: number): Promise<Round> {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('noop', { connection, prefix });
  await queue.pause();
  const procs = await Promise.all(Array.from({ length: hosts }, (_, i) => startHost(url, prefix, `h${i}`)));
  const producer = createHost({ config: { backend: { kind: 'redis', url, prefix }, cluster: { id: 'producer' } }, logger: silentLogger() });
  producer.register({ name: 'noop', concurrency: 10_000, handler: async () => undefined });
  producer.pause();
  await producer.start();
  const a0 = performance.now();
  let sent = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (sent < runs) {
        sent++;
        await producer.trigger('noop');
      }
    }),
  );
  const adds = (runs / (performance.now() - a0)) * 1000;
  await producer.stop({ graceMs: 0 });
  const { ms, cpuUs, redisUs } = await measure(queue, procs, redisPid, runs);
  await Promise.all(procs.map((p) => p.stop()));
  await queue.close();
  connection.disconnect();
  return { rate: (runs / ms) * 1000, adds, cpuUs, redisUs };
}

/** `workers` bare Worker processes start on a paused queue, `runs` jobs go in through `Queue.add` and `Queue.addBulk`, then they empty it. */
async function bareRound(url: string, redisPid: number, prefix: string, workers: number, runs: number): Promise<Round> {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('noop', { connection, prefix });
  await queue.pause();
  const procs = await Promise.all(Array.from({ length: workers }, () => startBareWorker(url, prefix)));
  const opts = { removeOnComplete: 1000, removeOnFail: 1000 };
  // The first half one `Queue.add` each with 256 in flight (the baseline of `host.trigger()`), the rest through `addBulk`.
  const half = Math.floor(runs / 2);
  const s0 = performance.now();
  let sent = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (sent < half) {
        sent++;
        await queue.add('noop', {}, opts);
      }
    }),
  );
  const singleAdds = (half / (performance.now() - s0)) * 1000;
  const a0 = performance.now();
  for (let i = half; i < runs; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, runs - i) }, () => ({ name: 'noop', data: {}, opts })));
  }
  const adds = ((runs - half) / (performance.now() - a0)) * 1000;
  const { ms, cpuUs, redisUs } = await measure(queue, procs, redisPid, runs);
  await Promise.all(procs.map((p) => p.stop()));
  await queue.close();
  connection.disconnect();
  return { rate: (runs / ms) * 1000, adds, singleAdds, cpuUs, redisUs };
}

/** trigger() → handler start on an idle one-host cluster, and Queue.add → processor start of a bare Worker (µs). */
async function latencies(url: string, samples: number): Promise<{ jobhost: number[]; bare: number[] }> {
  let started = 0;
  let onStart: (() => void) | undefined;
  const probe = async (): Promise<undefined> => {
    started = performance.now();
    onStart?.();
    return undefined;
  };
  const host: Host = createHost({ config: { backend: { kind: 'redis', url, prefix: `lat-${process.pid}` }, cluster: { id: 'lat' } }, logger: silentLogger() });
  host.register({ name: 'probe', handler: probe });
  await host.start();
  const jobhost: number[] = [];
  for (let i = 0; i < samples; i++) {
    const begun = new Promise<void>((resolve) => (onStart = resolve));
    const t0 = performance.now();
    await host.trigger('probe');
    await begun;
    jobhost.push((started - t0) * 1000);
    await new Promise((r) => setTimeout(r, 2));
  }
  await host.stop({ graceMs: 0 });

  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('probe', { connection, prefix: `bare-lat-${process.pid}` });
  const worker = new Worker('probe', probe, { connection: workerConnection, prefix: `bare-lat-${process.pid}` });
  await worker.waitUntilReady();
  const bare: number[] = [];
  for (let i = 0; i < samples; i++) {
    const begun = new Promise<void>((resolve) => (onStart = resolve));
    const t0 = performance.now();
    await queue.add('probe', {}, { removeOnComplete: 100 });
    await begun;
    bare.push((started - t0) * 1000);
    await new Promise((r) => setTimeout(r, 2));
  }
  await worker.close();
  await queue.close();
  connection.disconnect();
  workerConnection.disconnect();
  return { jobhost: jobhost.sort((a, b) => a - b), bare: bare.sort((a, b) => a - b) };
}

const say = (text: string): void => {
  if (process.env['BENCH_VERBOSE']) process.stderr.write(`  … ${text}\n`);
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function clusterBench(runs = 20_000, rounds = 3, appendfsync: 'everysec' | 'always' = 'everysec'): Promise<void> {
  header(
    `cluster: ${fmt(runs)} no-op runs emptied by N processes of ${CONCURRENCY} slots each, Redis 7 appendfsync ${appendfsync}, median of ${rounds} interleaved rounds`,
  );
  const { dir, remove } = benchDir('jobhost-bench-redis-');
  const redis = await spawnRedis(dir, { appendfsync });
  try {
    const counts = [1, 2, 3];
    const seen = new Map<string, Round[]>();
    let n = 0;
    // A short warm-up of both paths (JIT, Redis script cache), not counted.
    say('warm-up');
    await bareRound(redis.url, redis.pid, `warm-bare`, 1, 2000);
    await jobhostRound(redis.url, redis.pid, `warm-jobhost`, 1, 2000);
    for (let r = 0; r < rounds; r++) {
      for (const k of counts) {
        for (const kind of ['bare', 'jobhost'] as const) {
          const prefix = `b${++n}`;
          const round = kind === 'bare' ? await bareRound(redis.url, redis.pid, prefix, k, runs) : await jobhostRound(redis.url, redis.pid, prefix, k, runs);
          say(
            `round ${r + 1}, ${kind}, ${k}: ${fmt(round.rate)}/s, adds ${fmt(round.adds)}/s${round.singleAdds ? `, Queue.add ${fmt(round.singleAdds)}/s` : ''}`,
          );
          const key = `${kind}:${k}`;
          seen.set(key, [...(seen.get(key) ?? []), round]);
          // Keep Redis small between rounds: a round's keys are not needed again.
          const client = new Redis(redis.url);
          await client.flushall();
          client.disconnect();
        }
      }
    }
    for (const k of counts) {
      const bare = seen.get(`bare:${k}`)!;
      const jh = seen.get(`jobhost:${k}`)!;
      const b = median(bare.map((x) => x.rate));
      const j = median(jh.map((x) => x.rate));
      row(`${k} process${k > 1 ? 'es' : ''}: bare BullMQ`, `${fmt(b)} jobs/s   (rounds: ${bare.map((x) => fmt(x.rate / 1000, 1)).join('/')}k)`);
      row(`${k} process${k > 1 ? 'es' : ''}: jobhost`, `${fmt(j)} runs/s   (rounds: ${jh.map((x) => fmt(x.rate / 1000, 1)).join('/')}k)`);
      row(`${k} process${k > 1 ? 'es' : ''}: jobhost / bare (goal ≥ 0.8)`, fmt(j / b, 2));
      const bc = median(bare.map((x) => x.cpuUs));
      const jc = median(jh.map((x) => x.cpuUs));
      row(`${k} process${k > 1 ? 'es' : ''}: CPU per run, bare / jobhost`, `${fmt(bc)} µs / ${fmt(jc)} µs   (ratio ${fmt(bc / jc, 2)})`);
      const br = median(bare.map((x) => x.redisUs));
      const jr = median(jh.map((x) => x.redisUs));
      row(`${k} process${k > 1 ? 'es' : ''}: Redis CPU per run, bare / jobhost`, `${fmt(br)} µs / ${fmt(jr)} µs   (ratio ${fmt(br / jr, 2)})`);
    }
    const bareAdds = median([...seen.entries()].filter(([k]) => k.startsWith('bare')).flatMap(([, v]) => v.map((x) => x.adds)));
    const jhAdds = median([...seen.entries()].filter(([k]) => k.startsWith('jobhost')).flatMap(([, v]) => v.map((x) => x.adds)));
    const singleAdds = median([...seen.entries()].filter(([k]) => k.startsWith('bare')).flatMap(([, v]) => v.map((x) => x.singleAdds ?? 0)));
    row('adds: Queue.addBulk (1,000 a call)', `${fmt(bareAdds)} jobs/s`);
    row('adds: Queue.add, 256 in flight', `${fmt(singleAdds)} jobs/s`);
    row('adds: host.trigger(), 256 in flight', `${fmt(jhAdds)} runs/s (admission + add + index; a turn's adds in MULTIs of up to 32)`);
    row('adds: host.trigger() / Queue.add (goal ≥ 1.0)', fmt(jhAdds / singleAdds, 2));
    const lat = await latencies(redis.url, 500);
    row(
      'trigger → handler start, idle, p50 / p99',
      `${fmt(percentile(lat.jobhost, 50) / 1000, 2)} ms / ${fmt(percentile(lat.jobhost, 99) / 1000, 2)} ms (goal p50 ≤ 2 ms)`,
    );
    row('bare Queue.add → processor start, p50 / p99', `${fmt(percentile(lat.bare, 50) / 1000, 2)} ms / ${fmt(percentile(lat.bare, 99) / 1000, 2)} ms`);
  } finally {
    await redis.close();
    remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const mode = process.argv[4] === 'always' ? 'always' : 'everysec';
  await clusterBench(Number(process.argv[2] ?? 20_000), Number(process.argv[3] ?? 3), mode);
}
