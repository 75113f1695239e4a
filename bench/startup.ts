/**
 * Start-up of the `jobhost` command, to its first `GET /ready` 200: the installed package (built
 * JavaScript, `npm pack` + `npm install` into a new project, as a user gets it) against today's
 * start from the checkout (tsx compiling core/ as it loads). Both serve the same project (the
 * `jobhost init` starter) and run interleaved; a bare `node` HTTP server is the floor.
 */
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { initProject } from '../core/cli/init.js';
import { installProject, packCheckout, registryReachable, serve, until200, userEnv } from '../test/e2e/packed.js';
import { BIN, createProject, ROOT } from '../test/e2e/project.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

interface Variant {
  label: string;
  cmd: string;
  args: (port: number) => string[];
  cwd: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Milliseconds from spawn to the first 200 of `/ready` (or `/` for the floor), then a clean stop. */
async function once(v: Variant): Promise<number> {
  const port = await freePort();
  const since = performance.now();
  const child = serve(v.cmd, v.args(port), v.cwd, userEnv({ JOBHOST_PORT: String(port), LOG_LEVEL: 'warn' }));
  let closed = false;
  void child.closed.then(() => (closed = true));
  try {
    return await until200(`http://127.0.0.1:${port}/ready`, since, 60_000, () => !closed);
  } finally {
    child.signal('SIGTERM');
    // A hang guard: the stop is not what is measured.
    const timer = setTimeout(() => child.signal('SIGKILL'), 30_000);
    await child.closed;
    clearTimeout(timer);
  }
}

export async function startupBench(rounds = 10): Promise<void> {
  header('start-up to GET /ready: the installed package vs tsx from the checkout');
  const reach = await registryReachable(ROOT);
  if (!reach.ok) {
    row('skipped', `the npm registry is unreachable (${reach.why})`);
    return;
  }
  const work = benchDir('jobhost-bench-startup-');
  try {
    const packDir = path.join(work.dir, 'pack');
    const installed = path.join(work.dir, 'installed');
    const source = path.join(work.dir, 'source');
    for (const d of [packDir, installed, source]) mkdirSync(d);
    let t0 = performance.now();
    const { tarball } = await packCheckout(packDir);
    row('npm pack (prepack builds dist/)', `${fmt(performance.now() - t0)} ms`);
    t0 = performance.now();
    await installProject(installed, tarball);
    row('npm install of the tarball', `${fmt(performance.now() - t0)} ms (npm cache as it is)`);
    await initProject({ cwd: installed });
    createProject(source, {}, { examples: false });
    await initProject({ cwd: source });

    const variants: Variant[] = [
      {
        label: 'installed: node …/jobhost/core/bin.mjs start',
        cmd: process.execPath,
        args: () => [path.join(installed, 'node_modules/jobhost/core/bin.mjs'), 'start'],
        cwd: installed,
      },
      { label: 'installed: npx jobhost start', cmd: 'npx', args: () => ['--no', '--', 'jobhost', 'start'], cwd: installed },
      { label: 'checkout: node core/bin.mjs start (tsx)', cmd: process.execPath, args: () => [BIN, 'start'], cwd: source },
      {
        label: 'floor: node, a bare http server',
        cmd: process.execPath,
        args: (port) => ['-e', `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`],
        cwd: work.dir,
      },
    ];
    // One round each first, untimed: the OS file cache and the data/ store, as on any later start.
    for (const v of variants) await once(v);
    const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    for (let r = 0; r < rounds; r++) for (const v of variants) times.get(v)!.push(await once(v));

    const median = (v: Variant): number =>
      percentile(
        [...times.get(v)!].sort((a, b) => a - b),
        50,
      );
    for (const v of variants) {
      const sorted = [...times.get(v)!].sort((a, b) => a - b);
      row(v.label, `p50 ${fmt(percentile(sorted, 50))} ms, p90 ${fmt(percentile(sorted, 90))} ms, min ${fmt(sorted[0]!)} ms (${rounds} starts)`);
    }
    const [installedNode, , checkout] = variants;
    row('ratio installed / tsx checkout (p50)', fmt(median(installedNode!) / median(checkout!), 2));
  } finally {
    work.remove();
  }
}
