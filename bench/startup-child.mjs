// Child process for the start-up benchmark: opens a host on an existing store and reports how
// long `start()` took and the process RSS afterwards, as one JSON line. Argument 3 is the entry
// to load: the sources (`core/index.ts`, run under tsx) or the built package (`dist/index.js`,
// plain node, as an installed package runs). JavaScript, so plain node can run it.
const dir = process.argv[2];
const entry = process.argv[3] ?? new URL('../core/index.ts', import.meta.url).href;
const { createHost, silentLogger } = await import(entry);
const t0 = performance.now();
const host = createHost({ config: { store: { dir, keepRuns: 1_000_000 } }, logger: silentLogger() });
host.register({ name: 'noop', handler: () => undefined });
await host.start();
const startMs = performance.now() - t0;
const firstPage = await host.runs({ limit: 50 });
const rss = process.memoryUsage().rss / 1e6;
await host.stop();
console.log(JSON.stringify({ startMs, rss, history: host.stats().store.historyRuns, firstPage: firstPage.items.length }));
