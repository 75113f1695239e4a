import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freshPrefix } from '../cluster.js';
import { type Tap, tempDir, until } from '../helpers.js';
import { startRedis, type TestRedis } from '../redis.js';
import { makeProject, type Running, runCli } from './project.js';

/**
 * Cluster mode as users run it: `jobhost start` processes, each with its own project (config and
 * plugins directory), on one private redis-server.
 */

/**
 * A plugin that appends `<runId> <host> <attempt>` to a file for every attempt it starts, then
 * sleeps `ms` (`holdMs` on host `holdOn`, to hold a run on the host that is to be killed, whichever
 * attempt that host runs).
 */
function countingPlugin(file: string): string {
  return `import { appendFileSync } from 'node:fs';
export default {
  name: 'count',
  concurrency: 50,
  retry: { attempts: 5, delay: 10 },
  async handler(ctx) {
    appendFileSync(${JSON.stringify(file)}, ctx.runId + ' ' + process.env.HOST_ID + ' ' + ctx.attempt + '\\n');
    const ms = (ctx.params.holdOn === process.env.HOST_ID ? ctx.params.holdMs : undefined) ?? ctx.params.ms ?? 0;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    return { host: process.env.HOST_ID };
  },
};
`;
}

interface ClusterProcess extends Running {
  id: string;
  url: string;
}

async function startHostProcess(t: Tap, redis: TestRedis, prefix: string, id: string, plugin: string, extra: object = {}): Promise<ClusterProcess> {
  const dir = makeProject(
    t,
    { server: { port: 0 }, backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 1000, stalledInterval: 500 }, cluster: { id }, ...extra },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins', 'count.ts'), plugin);
  const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'info', HOST_ID: id });
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), `${id} started`);
  return Object.assign(app, { id, url: line['url'] as string });
}

const post = (url: string, body: unknown = {}): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

t.test('three host processes on one Redis: 1,000 triggers spread over them all succeed, each handler ran exactly once, on at least two hosts', async (t) => {
  const redis = await startRedis(t);
  const file = path.join(tempDir(t), 'ran.log');
  writeFileSync(file, '');
  const prefix = freshPrefix();
  // No takeover to wait for here: locks long enough that a loaded CI machine (three hosts, Redis
  // and other test files on two cores) never lets one lapse, which would run a run twice.
  const backend = { kind: 'redis', url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000 };
  const hosts = await Promise.all(['a', 'b', 'c'].map((id) => startHostProcess(t, redis, prefix, id, countingPlugin(file), { backend })));

  const ids: string[] = [];
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 30 }, async () => {
      while (next < 1000) {
        const i = next++;
        const res = await post(`${hosts[i % 3]!.url}/jobs/count/run`, { params: { ms: 2 } });
        statuses.push(res.status);
        ids.push(((await res.json()) as { runId: string }).runId);
      }
    }),
  );
  t.ok(
    statuses.every((s) => s === 202),
    'every trigger answered 202',
  );
  t.equal(new Set(ids).size, 1000, '1,000 distinct run ids acknowledged');

  let totals: unknown;
  await until(
    async () => {
      const stats = (await (await fetch(`${hosts[2]!.url}/stats`)).json()) as { totals: { succeeded: number } };
      totals = stats.totals;
      return stats.totals.succeeded >= 1000;
    },
    60_000,
    'all 1,000 to succeed',
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; totals at the end: ${JSON.stringify(totals)}`);
  });
  t.match(totals, { succeeded: 1000, failed: 0 }, 'no more, no fewer, none failed');
  const page = (await (await fetch(`${hosts[0]!.url}/runs?limit=1000&status=succeeded`)).json()) as { items: Array<{ id: string; host: string }> };
  t.same(new Set(page.items.map((r) => r.id)), new Set(ids), 'every acknowledged run is listed succeeded, from any host');
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const byRun = new Map<string, number>();
  for (const l of lines) byRun.set(l.split(' ')[0]!, (byRun.get(l.split(' ')[0]!) ?? 0) + 1);
  t.equal(lines.length, 1000, 'the handlers ran 1,000 times in all');
  t.ok([...byRun.values()].every((n) => n === 1) && byRun.size === 1000, 'each run exactly once');
  const perHost = new Map<string, number>();
  for (const r of page.items) perHost.set(r.host, (perHost.get(r.host) ?? 0) + 1);
  t.ok(perHost.size >= 2, `runs ran on ${perHost.size} hosts: ${JSON.stringify([...perHost])}`);
});

t.test('kill -9 of a host mid-run: another host takes the run over once its lock expires, and it finishes', async (t) => {
  const redis = await startRedis(t);
  const file = path.join(tempDir(t), 'ran.log');
  writeFileSync(file, '');
  const prefix = freshPrefix();
  const b = await startHostProcess(t, redis, prefix, 'b', countingPlugin(file));
  // Held on b far longer than starting host c can take on a loaded machine: b is killed while it
  // runs. Any attempt b starts is held: on a loaded machine b's 1 s lock can lapse before the kill,
  // and then BullMQ's stalled check rightly hands the run to a worker again, b's own included.
  const res = await post(`${b.url}/jobs/count/run`, { params: { holdOn: 'b', holdMs: 120_000 } });
  const { runId } = (await res.json()) as { runId: string };
  await until(() => readFileSync(file, 'utf8').includes(`${runId} b 1`), 10_000, 'the run to start on b');
  const c = await startHostProcess(t, redis, prefix, 'c', countingPlugin(file));
  b.child.kill('SIGKILL');
  await b.exited;
  const killedAt = Date.now();
  let run: { status: string; host: string; attempts: Array<{ n: number; error: { code: string } | null }> } | undefined;
  await until(
    async () => {
      run = (await (await fetch(`${c.url}/runs/${runId}`)).json()) as typeof run;
      return run!.status === 'succeeded';
    },
    20_000,
    'the run to be taken over and finish',
  );
  t.match(run, { status: 'succeeded', host: 'c' }, 'finished on c');
  t.match(run!.attempts[0], { n: 1, error: { code: 'INTERRUPTED' } }, 'the attempt b was running counts, INTERRUPTED');
  t.match(run!.attempts.at(-1), { error: null }, 'and a later attempt succeeded');
  t.ok(Date.now() - killedAt < 15_000, `taken over and done ${Date.now() - killedAt} ms after the kill (lock 1 s, stalled check 0.5 s)`);
  const started = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ').slice(1));
  const last = run!.attempts.at(-1)!.n;
  // Normally ['b 1', 'c 2']; an attempt more on b only if b's lock lapsed before the kill.
  t.same(
    started,
    [...Array.from({ length: last - 1 }, (_, i) => ['b', String(i + 1)]), ['c', String(last)]],
    `started on b (attempts 1..${last - 1}), then once on c: attempt ${last}, the last`,
  );
  t.equal(run!.attempts.length, last, 'every attempt is on the run');
  t.ok(
    run!.attempts.slice(0, -1).every((a) => a.error?.code === 'INTERRUPTED'),
    'every attempt on b counts, INTERRUPTED',
  );
});

t.test('jobhost start with an unreachable Redis or a bad URL: a clear error, no stack trace, exit 1', async (t) => {
  const dir = makeProject(t, { server: { port: 0 }, backend: { kind: 'redis', url: 'redis://127.0.0.1:1' } }, { examples: false });
  const down = runCli(t, dir, ['start']);
  t.equal(await down.exited, 1);
  t.match(down.stderr(), /^jobhost: cannot start: BACKEND_UNAVAILABLE cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)\n$/);

  const bad = makeProject(t, { server: { port: 0 }, backend: { kind: 'redis', url: 'http://example.com' } }, { examples: false });
  const invalid = runCli(t, bad, ['start']);
  t.equal(await invalid.exited, 1);
  t.match(invalid.stderr(), /^jobhost: cannot start: CONFIG_INVALID backend\.url: expected a Redis URL/);
  t.notMatch(invalid.stderr(), /\n\s+at /, 'no stack trace');

  const env = runCli(t, dir, ['start'], { JOBHOST_REDIS_URL: 'redis://127.0.0.1:2' });
  t.equal(await env.exited, 1);
  t.match(env.stderr(), /BACKEND_UNAVAILABLE cannot reach Redis at redis:\/\/127\.0\.0\.1:2/, 'JOBHOST_REDIS_URL sets the URL (and cluster mode)');
});
