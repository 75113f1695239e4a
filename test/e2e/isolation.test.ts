import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { until } from '../helpers.js';
import { makeProject, runCli } from './project.js';

/**
 * The case, as a user meets it: `jobhost start`, a plugin whose handler computes for
 * a minute with `timeout: '1s'`, real time. The API, other jobs and the timeout all carry on.
 */

const spin = (mark: string): string => `
import { renameSync, writeFileSync } from 'node:fs';
export default {
  name: 'spin',
  timeout: '1s',
  handler: () => {
    // Written whole, then renamed: the test waits for the file to exist, then reads it, and a file
    // seen between its creation and its write would read empty.
    writeFileSync(${JSON.stringify(mark + '.tmp')}, 'spinning');
    renameSync(${JSON.stringify(mark + '.tmp')}, ${JSON.stringify(mark)});
    const end = Date.now() + 60_000;
    while (Date.now() < end) {}
    return 'spun';
  },
};
`;

t.test('a CPU-bound handler does not freeze the host: /health and other jobs answer, its timeout holds, its thread is replaced', async (t) => {
  const dir = makeProject(t, { server: { port: 0 }, workers: { size: 2, grace: '500ms' } }, { examples: false });
  const mark = path.join(dir, 'spinning.mark');
  writeFileSync(path.join(dir, 'plugins', 'spin.ts'), spin(mark));
  writeFileSync(path.join(dir, 'plugins', 'quick.ts'), `export default { name: 'quick', handler: () => 'quick' };\n`);
  const app = runCli(t, dir, ['start']);
  const url = String((await app.waitFor((l) => /dashboard and API at http/.test(l.msg), 'the URL'))['url']);
  const post = async (p: string): Promise<Record<string, unknown>> => {
    const res = await fetch(url + p, { method: 'POST', headers: { 'content-type': 'application/json' } });
    t.equal(res.status, 202, `POST ${p}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const run = async (id: unknown): Promise<Record<string, unknown>> => (await (await fetch(`${url}/runs/${String(id)}`)).json()) as Record<string, unknown>;

  // A first run: the host starts its threads with it, which a 1 s timeout need not cover.
  const first = (await post('/jobs/quick/run'))['runId'];
  await until(async () => (await run(first))['status'] === 'succeeded', 30_000, 'a first run');

  const spinId = (await post('/jobs/spin/run'))['runId'];
  await until(() => existsSync(mark), 60_000, 'the handler to spin').catch((err: unknown) => {
    // What the host said meanwhile, to tell a slow machine from a thread that never started.
    t.comment(app.lines.filter((l) => l.level >= 40 || /run\.|worker/.test(String(l.msg))).map((l) => JSON.stringify(l)));
    t.comment(app.stderr());
    throw err;
  });
  t.equal(readFileSync(mark, 'utf8'), 'spinning');

  const t0 = performance.now();
  const health = await fetch(`${url}/health`);
  const healthMs = performance.now() - t0;
  t.equal(health.status, 200);
  // The spin lasts a minute: an answer held up by it would take that long, not seconds.
  t.ok(healthMs < 5000, `/health answered in ${healthMs.toFixed(1)} ms while the handler spins`);

  const quickId = (await post('/jobs/quick/run'))['runId'];
  await until(async () => (await run(quickId))['status'] === 'succeeded', 30_000, 'the other job to run');
  t.match(await run(quickId), { status: 'succeeded', result: 'quick' });

  await until(async () => (await run(spinId))['status'] === 'failed', 30_000, 'the spinning run to end');
  const ended = await run(spinId);
  t.match(ended, { status: 'failed', error: { code: 'TIMEOUT' } });
  // About 1 s: a run ended by the spin's end would take its minute (the bound leaves a loaded machine its stalls).
  const took = ended['durationMs'] as number;
  t.ok(took >= 1000 && took < 30_000, `it ended at its timeout (${String(took)} ms), not the spin's minute`);
  const replaced = await app.waitFor((l) => l['reason'] === 'grace' && /replacing it/.test(l.msg), 'the thread terminated after the grace');
  t.match(replaced, { level: 40, runs: [spinId] });
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /jobhost_worker_restarts_total\{reason="grace"\} 1/);

  const again = (await post('/jobs/quick/run'))['runId'];
  await until(async () => (await run(again))['status'] === 'succeeded', 30_000, 'a run after the replacement');
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);
});
