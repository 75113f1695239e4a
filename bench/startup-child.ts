/**
 * Child process for the start-up benchmark: opens a host on an existing store and reports how
 * long `start()` took and the process RSS afterwards, as one JSON line.
 */
import { createHost, silentLogger } from '../core/index.js';

const dir = process.argv[2]!;
const t0 = performance.now();
const host = createHost({ config: { store: { dir, keepRuns: 1_000_000 } }, logger: silentLogger() });
host.register({ name: 'noop', handler: () => undefined });
await host.start();
const startMs = performance.now() - t0;
const firstPage = await host.runs({ limit: 50 });
const rss = process.memoryUsage().rss / 1e6;
await host.stop();
console.log(JSON.stringify({ startMs, rss, history: host.stats().store.historyRuns, firstPage: firstPage.items.length }));
