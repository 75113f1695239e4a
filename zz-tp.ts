import { throughput } from './bench/runs.js';
await throughput('disk', 20_000, 'worker');
await throughput('disk', 20_000, 'inline');
for (let i = 0; i < 2; i++) {
  console.log('worker', Math.round(await throughput('disk', 100_000, 'worker')));
  console.log('inline', Math.round(await throughput('disk', 100_000, 'inline')));
}
