import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { until } from '../helpers.js';
import { makeProject, type Running, runCli } from './project.js';

const HOLD = pathToFileURL(path.resolve(import.meta.dirname, '../fixtures/hold-app-import.mjs')).href;

/** Starts `jobhost start` in `dir` and returns it with its API URL. */
async function start(t: Parameters<typeof runCli>[0], dir: string): Promise<Running & { url: string }> {
  const app = runCli(t, dir, ['start']);
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'the started line', { ms: 30_000 });
  return Object.assign(app, { url: line['url'] as string });
}

const post = (url: string, body: unknown = {}): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function runOf(
  url: string,
  id: string,
): Promise<{ status: string; endedAt: string | null; attempts: Array<{ error: { code: string } | null }>; result: unknown }> {
  return (await (await fetch(`${url}/runs/${id}`)).json()) as never;
}

function project(t: Parameters<typeof runCli>[0], grace: string): string {
  const dir = makeProject(t, { server: { port: 0 }, shutdown: { grace } }, { examples: false });
  writeFileSync(
    path.join(dir, 'plugins', 'quick-finish.ts'),
    // Ends once the test writes the file `release` (after the stop began): still in flight at
    // SIGTERM, then done well inside the grace, whatever the machine's load. It says when it began:
    // a run is `running` from its dispatch, which can be before a worker thread warming up after
    // the start has begun the handler.
    `import { existsSync } from 'node:fs';\nexport default { name: 'quick-finish', handler: (ctx: { log: { info(m: string): void } }) => { ctx.log.info('quick-finish began'); return new Promise((r) => { const look = setInterval(() => { if (existsSync(${JSON.stringify(path.join(dir, 'release'))})) { clearInterval(look); r('done in time'); } }, 20); }); } };\n`,
  );
  writeFileSync(
    path.join(dir, 'plugins', 'too-long.ts'),
    "export default { name: 'too-long', retry: { attempts: 2 }, handler: (ctx: { signal: AbortSignal }) => new Promise((r, j) => { const t = setTimeout(r, 120_000); ctx.signal.addEventListener('abort', () => { clearTimeout(t); j(ctx.signal.reason); }); }) };\n",
  );
  return dir;
}

t.test('SIGTERM: runs finish within the grace, longer ones go back to queued, new triggers get 503, exit 0', async (t) => {
  const dir = project(t, '4s');
  const app = await start(t, dir);
  const quick = ((await (await post(`${app.url}/jobs/quick-finish/run`)).json()) as { runId: string }).runId;
  const long = ((await (await post(`${app.url}/jobs/too-long/run`)).json()) as { runId: string }).runId;
  await until(async () => (await runOf(app.url, quick)).status !== 'queued', 10_000, 'quick-finish started');
  await until(async () => (await runOf(app.url, long)).status === 'running', 10_000, 'too-long running');
  await app.waitFor((l) => l.msg === 'quick-finish began', 'the quick handler begun', { ms: 10_000 });

  app.child.kill('SIGTERM');
  const stopping = await app.waitFor((l) => l.event === 'host.stopping', 'host.stopping');
  writeFileSync(path.join(dir, 'release'), '');
  const refused = await post(`${app.url}/jobs/quick-finish/run`);
  t.equal(refused.status, 503);
  t.match(await refused.json(), { statusCode: 503, code: 'SHUTTING_DOWN' });
  t.equal(await app.exited, 0, 'exit code 0');
  t.ok(app.lines.some((l) => l.event === 'host.stopped'));

  const again = await start(t, dir);
  const quickRun = await runOf(again.url, quick);
  t.match(quickRun, { status: 'succeeded', result: 'done in time' }, 'finished within the grace');
  t.ok(Date.parse(quickRun.endedAt!) > Number(stopping['time']), 'it was still in flight when shutdown began');
  const longRun = await runOf(again.url, long);
  t.match(longRun.attempts[0], { error: { code: 'SHUTDOWN' } }, 'the aborted attempt is recorded with reason shutdown');
  t.ok(['queued', 'running'].includes(longRun.status), `queued again and picked up on the next start (${longRun.status})`);
});

t.test('a second signal exits at once; what was acknowledged is still on disk', async (t) => {
  const dir = project(t, '60s');
  const app = await start(t, dir);
  const long = ((await (await post(`${app.url}/jobs/too-long/run`)).json()) as { runId: string }).runId;
  const queued = ((await (await post(`${app.url}/jobs/quick-finish/run`, { delay: '1h' })).json()) as { runId: string }).runId;
  await until(async () => (await runOf(app.url, long)).status === 'running', 10_000, 'running');
  app.child.kill('SIGTERM');
  await app.waitFor((l) => l.event === 'host.stopping', 'host.stopping');
  const t0 = Date.now();
  app.child.kill('SIGINT');
  const code = await app.exited;
  t.ok(Date.now() - t0 < 30_000, 'exited long before the 60 s grace');
  t.equal(code, 1, 'a forced exit says so');

  const again = await start(t, dir);
  t.match(await runOf(again.url, queued), { status: 'queued' }, 'the delayed run is still queued');
  const recovered = await runOf(again.url, long);
  t.match(recovered.attempts[0], { error: { code: 'INTERRUPTED' } }, 'the cut attempt is recorded as interrupted');
});

t.test('SIGTERM while the command still loads, before the host has signal handlers of its own: the same stop once started, exit 0', async (t) => {
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  const hold = path.join(dir, 'hold');
  mkdirSync(hold);
  const app = runCli(t, dir, ['start'], { NODE_OPTIONS: `--import=${HOLD}`, JOBHOST_HOLD_DIR: hold });
  await until(() => existsSync(path.join(hold, 'loading')), 30_000, 'the command loading the host');
  // Delivered at once: on Node's default action (no handler yet) the process ends here, with 143.
  app.child.kill('SIGTERM');
  writeFileSync(path.join(hold, 'go'), '');
  t.equal(await app.exited, 0, 'exit code 0, not killed by the signal (143)');
  t.ok(
    app.lines.some((l) => l.event === 'host.started'),
    'started first',
  );
  t.ok(
    app.lines.some((l) => l.event === 'host.stopping' && l['reason'] === 'SIGTERM'),
    'then the stop the signal asked for',
  );
  t.ok(
    app.lines.some((l) => l.event === 'host.stopped'),
    'host.stopped',
  );
});

t.test('SIGTERM while the host is still starting (a slow plugin import): a graceful stop once it has started, exit 0', async (t) => {
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  const importing = path.join(dir, 'importing');
  const go = path.join(dir, 'go');
  // Its import waits for the test: the process holds the store (opened first) and is not started yet.
  writeFileSync(
    path.join(dir, 'plugins', 'slow-import.ts'),
    `import { existsSync, mkdirSync, writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(importing)}, '');\nwhile (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 20));\nexport default { name: 'slow-import', handler: () => 'ok' };\n`,
  );
  const app = runCli(t, dir, ['start']);
  await until(() => existsSync(importing), 30_000, 'the plugin import began');
  app.child.kill('SIGTERM');
  await app.waitFor((l) => l.msg.startsWith('stopping once the start is done'), 'the signal heard');
  writeFileSync(go, '');
  t.equal(await app.exited, 0, 'exit code 0, not killed by the signal');
  t.ok(
    app.lines.some((l) => l.event === 'host.stopping'),
    'host.stopping',
  );
  t.ok(
    app.lines.some((l) => l.event === 'host.stopped'),
    'host.stopped',
  );
});
