/**
 * Replicated acknowledgements (issue 25): a one-host cluster on a Redis master with one replica,
 * `backend.waitReplicas` 0 against 1 on the same pair in the same run (rounds interleaved, medians
 * printed): acknowledged triggers per second (`host.trigger()`, 256 in flight, the host paused so
 * only the adds count) and trigger → acknowledgement latency one at a time (what a 202 waits for).
 * Run: `npm run bench -- cluster-replicas` (also part of `npm run bench -- cluster`), or
 * `npx tsx bench/cluster-replicas.ts [triggers] [rounds]`.
 */
import { pathToFileURL } from 'node:url';
import { createHost, silentLogger } from '../core/index.js';
import { spawnRedis } from '../test/redis.js';
import { startReplica } from '../test/redis-ha.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

interface Round {
  adds: number;
  latencies: number[];
}

async function round(url: string, prefix: string, waitReplicas: number, triggers: number, samples: number): Promise<Round> {
  const host = createHost({
    config: { backend: { kind: 'redis', url, prefix, waitReplicas, waitTimeout: 5000 }, cluster: { id: `r${waitReplicas}` } },
    logger: silentLogger(),
  });
  host.register({ name: 'noop', concurrency: 10_000, handler: async () => undefined });
  host.pause();
  await host.start();
  const t0 = performance.now();
  let sent = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (sent < triggers) {
        sent++;
        await host.trigger('noop');
      }
    }),
  );
  const adds = (triggers / (performance.now() - t0)) * 1000;
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const s0 = performance.now();
    await host.trigger('noop');
    latencies.push((performance.now() - s0) * 1000);
  }
  await host.stop({ graceMs: 0 });
  return { adds, latencies };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function clusterReplicasBench(triggers = 5000, rounds = 3): Promise<void> {
  header(
    `cluster, replicated acknowledgements: ${fmt(triggers)} triggers, one host, a master and one replica (appendfsync everysec), waitReplicas 0 vs 1, median of ${rounds} interleaved rounds`,
  );
  const cleanups: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
  const { dir, remove } = benchDir('jobhost-bench-replicas-');
  const master = await spawnRedis(dir, { appendfsync: 'everysec' });
  try {
    await startReplica(t, master.port);
    const seen = new Map<number, Round[]>([
      [0, []],
      [1, []],
    ]);
    let n = 0;
    await round(master.url, 'warm', 1, 1000, 50);
    for (let r = 0; r < rounds; r++) {
      for (const w of [0, 1]) seen.get(w)!.push(await round(master.url, `rep${++n}`, w, triggers, 500));
    }
    const adds = new Map<number, number>();
    for (const w of [0, 1]) {
      const rs = seen.get(w)!;
      adds.set(w, median(rs.map((x) => x.adds)));
      const lat = rs.flatMap((x) => x.latencies).sort((a, b) => a - b);
      row(`waitReplicas ${w}: acknowledged triggers`, `${fmt(adds.get(w)!)} /s   (rounds: ${rs.map((x) => fmt(x.adds / 1000, 1)).join('/')}k)`);
      row(`waitReplicas ${w}: trigger → acknowledgement p50 / p99`, `${fmt(percentile(lat, 50) / 1000, 2)} ms / ${fmt(percentile(lat, 99) / 1000, 2)} ms`);
    }
    row('waitReplicas 1 / 0: acknowledged triggers', fmt(adds.get(1)! / adds.get(0)!, 2));
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await master.close();
    remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await clusterReplicasBench(Number(process.argv[2] ?? 5000), Number(process.argv[3] ?? 3));
}
