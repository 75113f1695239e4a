import { throughput } from './bench/runs.js';
await throughput('disk', 20_000, 'worker');
console.log('worker', Math.round(await throughput('disk', 200_000, 'worker')));
