/**
 * One round of engine throughput in a fresh process, for benchmarks that compare two trees or
 * two set-ups (bench/ab.ts): `tsx bench/engine-round.ts <tree> <runs> <warm-up runs>` runs the
 * no-op pump of `<tree>/bench/runs.ts` (disk store) — the tree's own code, so an older commit
 * checked out elsewhere is measured as it was — and sends { rate, cpuUs } (runs/s, and the
 * process's CPU per run in µs, the export of the runs' spans included) to its parent. With `OTEL_*` set it first starts the SDK as
 * `jobhost start` does, and flushes it before answering. `<tree>` `sdk-floor`: no engine, only the
 * SDK making a run's three spans (bench/sdk-floor.ts).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { otelRequested, startOtel } from '../core/contract/otel-sdk.js';
import { sdkFloor } from './sdk-floor.js';

const [tree = '.', runs = '30000', warm = '10000'] = process.argv.slice(2);
const otel = otelRequested(process.env) ? await startOtel((msg) => console.error(`otel: ${msg}`)) : undefined;
const { throughput } =
  tree === 'sdk-floor'
    ? { throughput: (_store: 'disk', n: number) => sdkFloor(n, drain) }
    : ((await import(pathToFileURL(path.resolve(tree, 'bench/runs.ts')).href)) as { throughput(store: 'disk', runs: number): Promise<number> });
/**
 * Exports every queued span. The SDK's forceFlush sends all queued batches at once and rejects
 * past the exporter's 30 concurrent exports (the rest stay queued): flush again until it passes.
 */
async function drain(): Promise<void> {
  for (let i = 0; otel && i < 200; i++) {
    const done = await otel.flush().then(
      () => true,
      () => false,
    );
    if (done) return;
  }
}

await throughput('disk', Number(warm));
await drain();
const cpu = process.cpuUsage();
const rate = await throughput('disk', Number(runs));
// The spans still queued are exported within the CPU measured: their cost is the runs'.
await drain();
const used = process.cpuUsage(cpu);
await otel?.shutdown(10_000);
process.send?.({ rate, cpuUs: (used.user + used.system) / Number(runs) }, () => process.exit(0));
