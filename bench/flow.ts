/**
 * Flow control (SPEC §13, issue 27): how close a rate-limited job runs to its limit on the local
 * backend (in-memory store, real clock): every run triggered at once, starts counted per second
 * from the first start to the last. A ratio near 1 means the held runs start as each window
 * closes, without losing time between windows. `bench engine` covers the path without a limit.
 * Run: `npm run bench -- flow`.
 */
import { pathToFileURL } from 'node:url';
import { createHost, silentLogger } from '../core/index.js';
import { benchDir, fmt, header, row } from './util.js';

export async function flowBench(max = 500, perMs = 100, windows = 20): Promise<void> {
  const limit = (max / perMs) * 1000;
  const runs = max * windows;
  header(`flow control: ${fmt(runs)} runs of a job limited to ${max} per ${perMs} ms (${fmt(limit)} starts/s)`);
  const { dir, remove } = benchDir();
  const host = createHost({ store: 'memory', config: { store: { dir }, concurrency: 10_000 }, logger: silentLogger() });
  const starts: number[] = [];
  host.register({ name: 'limited', concurrency: 10_000, rateLimit: { max, per: perMs }, handler: () => void starts.push(performance.now()) });
  await host.start();
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  host.on('run.succeeded', () => {
    if (++done === runs) allDone();
  });
  await Promise.all(Array.from({ length: runs }, () => host.trigger('limited')));
  await finished;
  await host.stop();
  remove();
  // n starts over (n / max - 1) windows between the first start and the last: starts/s as the limiter paces them.
  const span = starts.at(-1)! - starts[0]!;
  const rate = ((runs - max) / span) * 1000;
  row('rate limit: starts/s', `${fmt(rate)} starts/s`);
  row('rate limit: starts/s / limit', fmt(rate / limit, 3));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await flowBench();
}
