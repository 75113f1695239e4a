/**
 * `npm run bench [-- name...]`: runs the benchmarks and prints their figures. Benchmarks never
 * fail; ratios are against baselines measured in the same run, on the same machine.
 */
import { compareBench } from './ab.js';
import { clusterBench } from './cluster.js';
import { clusterFiresBench } from './cluster-fires.js';
import { clusterReplicasBench } from './cluster-replicas.js';
import { durabilityBench } from './durability.js';
import { engineBench } from './engine.js';
import { flowBench } from './flow.js';
import { httpBench } from './http.js';
import { isolationBench } from './isolation.js';
import { notifyBench } from './notify.js';
import { reloadBench } from './reload.js';
import { seriesBench } from './series.js';
import { soakKillBench } from './soak-kill.js';
import { startupBench } from './startup.js';
import { tracingBench } from './tracing.js';
import { wsBench } from './ws.js';

const benches: Record<string, () => Promise<void>> = {
  engine: () => engineBench(),
  http: () => httpBench(),
  isolation: () => isolationBench(),
  ws: () => wsBench(),
  reload: () => reloadBench(),
  durability: () => durabilityBench(),
  'soak-kill': () => soakKillBench(),
  series: () => seriesBench(),
  startup: () => startupBench(),
  notify: () => notifyBench(),
  tracing: () => tracingBench(),
  // BENCH_BEFORE=<ref> [BENCH_AFTER=<ref>]: engine and HTTP of after (default: this tree) over before.
  compare: async () => {
    if (process.env['BENCH_BEFORE']) await compareBench(process.env['BENCH_BEFORE'], process.env['BENCH_AFTER']);
    else console.log('\n## compare: skipped (set BENCH_BEFORE=<git ref>, and BENCH_AFTER, default: this working tree)');
  },
  flow: () => flowBench(),
  cluster: async () => {
    await clusterBench();
    await clusterFiresBench();
    await clusterReplicasBench();
  },
  'cluster-fires': () => clusterFiresBench(),
  'cluster-replicas': () => clusterReplicasBench(),
};

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(benches);
console.log(`# jobhost benchmarks — node ${process.version}, ${new Date().toISOString()}`);
for (const name of names) {
  const bench = benches[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(benches).join(', ')}`);
    process.exitCode = 2;
    continue;
  }
  await bench();
}
