import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { until } from '../helpers.js';
import { makeProject, type Running, runCli } from './project.js';

/** `promise`, or a rejection naming `what` after `ms`: every wait on a child is bounded. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function start(t: Parameters<typeof runCli>[0], dir: string): Promise<Running & { url: string }> {
  const app = runCli(t, dir, ['start']);
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'the started line');
  return Object.assign(app, { url: line['url'] as string });
}

t.test('a second `jobhost start` on the same store exits with STORE_LOCKED; after a kill -9 of the first, a new start succeeds', async (t) => {
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  writeFileSync(path.join(dir, 'plugins', 'echo.ts'), "export default { name: 'echo', handler: (ctx: { params: unknown }) => ctx.params };\n");

  const first = await start(t, dir);
  const res = await fetch(`${first.url}/jobs/echo/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ params: { n: 1 } }),
  });
  t.equal(res.status, 202);
  const { runId } = (await res.json()) as { runId: string };
  const statusOf = async (url: string): Promise<string> => ((await (await fetch(`${url}/runs/${runId}`)).json()) as { status: string }).status;
  await until(async () => (await statusOf(first.url)) === 'succeeded', 10_000, 'the run to succeed');

  const second = runCli(t, dir, ['start']);
  const code = await within(second.exited, 30_000, 'the second start to exit');
  t.not(code, 0, 'the second start exits non-zero');
  t.match(second.stderr(), /STORE_LOCKED/, 'with the code');
  t.match(second.stderr(), `pid ${first.child.pid} on host ${hostname()}`, 'naming the holder');
  t.notMatch(second.stderr(), dir, 'the directory relative to the project, not the absolute path');
  t.equal(first.child.exitCode, null, 'the first is still running');
  t.equal(await statusOf(first.url), 'succeeded', 'and still answers');

  // kill -9 leaves jobhost.lock behind with the dead holder's name; the kernel lock went with it.
  first.child.kill('SIGKILL');
  t.equal(await within(first.exited, 10_000, 'the killed host to exit'), null, 'killed by the signal');
  const left = JSON.parse(readFileSync(path.join(dir, 'data', 'jobhost.lock'), 'utf8')) as { pid: number };
  t.equal(left.pid, first.child.pid, "the dead holder's name is still in the file");

  const third = await start(t, dir);
  t.equal(await statusOf(third.url), 'succeeded', 'the run is still there');
  third.child.kill('SIGTERM');
  t.equal(await within(third.exited, 30_000, 'the third host to stop'), 0, 'stops cleanly');
});
