import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freshPrefix } from '../cluster.js';
import { type Tap, until } from '../helpers.js';
import { startRedis, type TestRedis } from '../redis.js';
import { makeProject, type Running, runCli } from './project.js';

/**
 * A cluster-mode `jobhost start` that gets SIGTERM stops within a bound, whether Redis can be
 * reached or not (SPEC §9, §11): past the grace, what cannot reach Redis is left to the other
 * hosts' stalled-run recovery, and the process exits, non-zero when it could not hand work back.
 */

const GRACE_MS = 2000;
/** What a stop may take past the grace: the backend's bounded waits, with room for a loaded machine. */
const BOUND_MS = GRACE_MS + 15_000;

/** A run that ignores its abort signal: only the process's end ends it. */
const HANG = "export default { name: 'hang', handler: () => new Promise((r) => setTimeout(r, 600_000)) };\n";

async function startHost(t: Tap, redis: TestRedis): Promise<Running & { url: string }> {
  const dir = makeProject(
    t,
    {
      server: { port: 0 },
      shutdown: { grace: `${GRACE_MS}ms` },
      backend: { kind: 'redis', url: redis.url, prefix: freshPrefix() },
      cluster: { id: 'stopper' },
    },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins', 'hang.ts'), HANG);
  const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'info' });
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'the started line');
  return Object.assign(app, { url: line['url'] as string });
}

/** Triggers the hanging job and waits until it runs. */
async function hangingRun(url: string): Promise<string> {
  const res = await fetch(`${url}/jobs/hang/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const { runId } = (await res.json()) as { runId: string };
  await until(async () => ((await (await fetch(`${url}/runs/${runId}`)).json()) as { status: string }).status === 'running', 10_000, 'the run to start');
  return runId;
}

/** The child's own exit code, or 'still running' once `ms` have passed since `from`. */
async function exitWithin(app: Running, from: number, ms: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), Math.max(0, from + ms - Date.now()))));
  const code = await Promise.race([app.exited, late]);
  clearTimeout(timer);
  return code;
}

t.test('SIGTERM while Redis is gone (kill -9): the host exits within the grace and a bound, non-zero, naming the runs left to the other hosts', async (t) => {
  const redis = await startRedis(t);
  const app = await startHost(t, redis);
  const runId = await hangingRun(app.url);

  await redis.kill9();
  await app.waitFor((l) => l['code'] === 'BACKEND_UNAVAILABLE', 'the host to notice Redis is gone');
  const from = app.lines.length;
  const t0 = Date.now();
  app.child.kill('SIGTERM');
  const code = await exitWithin(app, t0, BOUND_MS);
  const took = Date.now() - t0;

  t.not(code, 'still running', `exited by itself within ${BOUND_MS} ms of SIGTERM (took ${took} ms)`);
  t.ok(typeof code === 'number' && code !== 0, `a non-zero exit code (${code}): work could not be handed back`);
  t.ok(took >= GRACE_MS, `not before the grace ran out (${took} ms)`);
  const left = app.lines.slice(from).find((l) => l['leftToOtherHosts'] !== undefined);
  t.match(
    left,
    { code: 'BACKEND_UNAVAILABLE', leftToOtherHosts: { runs: [runId], deliveries: [] } },
    'a log line names what was left to the other hosts: the hanging run',
  );
  t.ok(
    app.lines.slice(from).some((l) => l.event === 'host.stopped'),
    'host.stopped was emitted',
  );
});

t.test('SIGTERM while Redis is frozen (SIGSTOP: connections up, no replies, as in a network fault): the host exits within the bound, non-zero', async (t) => {
  const redis = await startRedis(t);
  const app = await startHost(t, redis);
  const runId = await hangingRun(app.url);

  process.kill(redis.pid, 'SIGSTOP');
  // Before the teardown's SIGTERM, which a stopped process would not act on.
  t.teardown(() => void process.kill(redis.pid, 'SIGCONT'));
  const from = app.lines.length;
  const t0 = Date.now();
  app.child.kill('SIGTERM');
  const code = await exitWithin(app, t0, BOUND_MS);
  t.not(code, 'still running', `exited by itself within ${BOUND_MS} ms of SIGTERM (took ${Date.now() - t0} ms)`);
  t.ok(typeof code === 'number' && code !== 0, `a non-zero exit code (${code})`);
  const left = app.lines.slice(from).find((l) => l['leftToOtherHosts'] !== undefined);
  t.match(left, { leftToOtherHosts: { runs: [runId] } }, 'the hanging run is named as left to the other hosts');
});

t.test('SIGTERM with Redis up: the aborted run goes back to Redis and the host exits 0 as before', async (t) => {
  const redis = await startRedis(t);
  const app = await startHost(t, redis);
  await hangingRun(app.url);

  const t0 = Date.now();
  app.child.kill('SIGTERM');
  const code = await exitWithin(app, t0, BOUND_MS);
  t.equal(code, 0, `exit code 0 (took ${Date.now() - t0} ms)`);
  t.notOk(
    app.lines.some((l) => l['leftToOtherHosts'] !== undefined),
    'nothing was left to other hosts',
  );
});
