import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost } from '../../../core/engine/host.js';
import { createServer } from '../../../core/server/server.js';
import { finalOn, freshPrefix, runWhen, startCluster } from '../../cluster.js';
import { captureLogger, gate, until } from '../../helpers.js';
import { closedPort } from '../../live-host.js';
import { startRedis } from '../../redis.js';

/** The redis backend as a whole: start-up errors, Redis going away and coming back, graceful shutdown. */

t.test('a Redis that cannot be reached at start: BACKEND_UNAVAILABLE naming it, nothing left running', async (t) => {
  const port = await closedPort();
  const host = createHost({
    config: { backend: { kind: 'redis', url: `redis://user:secret@127.0.0.1:${port}` } },
    plugins: [definePlugin({ name: 'x', handler: () => 1 })],
    logger: captureLogger().logger,
  });
  const err = await host.start().catch((e: unknown) => e);
  t.ok(isHostError(err) && err.code === 'BACKEND_UNAVAILABLE', 'BACKEND_UNAVAILABLE');
  t.match((err as Error).message, `cannot reach Redis at redis://127.0.0.1:${port} (ECONNREFUSED)`);
  t.notMatch((err as Error).message, /secret/, 'the password in the URL is never shown');
  await host.stop({ graceMs: 0 });
});

t.test('hosts with other lock timing than the live cluster do not start: BACKEND_SETTINGS_MISMATCH', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  await startCluster(t, redis, 1, { prefix });
  const other = createHost({
    config: { backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 5000, stalledInterval: 500 }, cluster: { id: 'odd' } },
    logger: captureLogger().logger,
  });
  const err = await other.start().catch((e: unknown) => e);
  t.ok(isHostError(err) && err.code === 'BACKEND_SETTINGS_MISMATCH');
  t.match((err as Error).message, /lockDuration 5000 ms .* differ from the cluster's \(1000 ms/);
  await other.stop({ graceMs: 0 });
});

t.test(
  'Redis killed mid-flow: 503 BACKEND_UNAVAILABLE with Retry-After, /ready 503 naming Redis, /health 200; back by itself; with appendfsync always no acknowledged run is lost',
  async (t) => {
    const redis = await startRedis(t, { appendfsync: 'always' });
    const { logger, lines } = captureLogger();
    // One host, no takeover to wait for: locks long enough that a loaded CI machine never lets one
    // lapse (a lapsed lock counts as a stall, and a run stalled twice ends failed, not lost).
    const host = createHost({
      config: { backend: { kind: 'redis', url: redis.url, prefix: freshPrefix(), lockDuration: 30_000, stalledInterval: 15_000 }, cluster: { id: 'solo' } },
      logger,
      plugins: [
        definePlugin({ name: 'work', concurrency: 20, handler: () => 'done' }),
        definePlugin({ name: 'listener', on: ['thing.happened'], handler: () => 1 }),
      ],
    });
    host.pause();
    await host.start();
    t.teardown(() => host.stop({ graceMs: 0 }));
    const server = createServer(host, { host: '127.0.0.1', port: 0 });
    const { url } = await server.listen();
    t.teardown(() => server.close());
    const post = (path: string, body: unknown = {}) =>
      fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    // Triggers keep flowing (10 at a time) while redis-server is killed -9 under them.
    const acknowledged: string[] = [];
    const statuses = new Map<number, number>();
    let flowing = true;
    const clients = Array.from({ length: 10 }, async () => {
      while (flowing) {
        const res = await post('/jobs/work/run');
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 202) acknowledged.push(((await res.json()) as { runId: string }).runId);
        else await res.text();
      }
    });
    await until(() => acknowledged.length >= 200, 10_000, '200 acknowledged triggers');
    await redis.kill9();
    await until(() => (statuses.get(503) ?? 0) >= 20, 10_000, 'triggers refused with 503');
    flowing = false;
    await Promise.all(clients);
    t.same([...statuses.keys()].sort(), [202, 503], `only 202 and 503 (${JSON.stringify([...statuses])})`);

    await until(async () => (await fetch(`${url}/ready`)).status === 503, 10_000, '/ready to notice');
    const ready = (await (await fetch(`${url}/ready`)).json()) as { status: string; backend: { kind: string; available: boolean; target: string } };
    t.match(ready, { status: 'degraded', backend: { kind: 'redis', available: false, target: `redis://127.0.0.1:${redis.port}` } }, '/ready names Redis');
    t.equal((await fetch(`${url}/health`)).status, 200, '/health stays 200');
    const refused = await post('/jobs/work/run');
    t.equal(refused.status, 503);
    t.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After');
    t.match(await refused.json(), { code: 'BACKEND_UNAVAILABLE' });
    t.equal((await post('/events/thing.happened', {})).status, 503, 'app events too');
    const bulk = await post('/runs/cancel', { job: 'work' });
    t.equal(bulk.status, 503, 'a bulk action answers 503 once, not an error per run');
    t.match(await bulk.json(), { code: 'BACKEND_UNAVAILABLE' });
    t.equal((await fetch(`${url}/runs`)).status, 503, 'reads of history answer 503 too');
    t.equal((await fetch(`${url}/jobs`)).status, 200, 'job views are served from the mirror');

    await redis.restart();
    await until(async () => (await fetch(`${url}/ready`)).status === 200, 15_000, 'back by itself');
    const after = await post('/jobs/work/run');
    t.equal(after.status, 202, 'triggers are accepted again');
    acknowledged.push(((await after.json()) as { runId: string }).runId);
    host.resume();
    let ok = 0;
    const others: string[] = [];
    for (const id of acknowledged) {
      const run = await finalOn(host, id);
      if (run.status === 'succeeded') ok++;
      else others.push(`${id} ${run.status} ${JSON.stringify(run.attempts.at(-1)?.error ?? null)}`);
    }
    t.equal(
      ok,
      acknowledged.length,
      `all ${acknowledged.length} acknowledged runs are there after the restart, and ran${others.length > 0 ? `; not: ${others.join('; ')}` : ''}`,
    );
    t.equal(lines.filter((l) => /unhandled|uncaught/i.test(String(l['msg']))).length, 0, 'no unhandled rejection or uncaught exception');
  },
);

t.test('graceful shutdown: a stopping host lets runs finish within the grace, hands the rest back to the cluster at once', async (t) => {
  const redis = await startRedis(t);
  const quick = gate();
  const plugin = definePlugin({
    name: 'jobs',
    concurrency: 10,
    retry: { attempts: 3 },
    handler: async (ctx) => {
      const { ms } = ctx.params as { ms: number };
      if (ms === 0) return quick.promise.then(() => 'quick');
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        });
      });
      return `slept ${ms}`;
    },
  });
  const hosts = await startCluster(t, redis, 2, { plugins: [plugin] });
  const [a, b] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
  b.host.pause();
  const fast = await a.host.trigger('jobs', { params: { ms: 0 } });
  const slow = await a.host.trigger('jobs', { params: { ms: 60_000 } });
  await runWhen(a.host, slow.runId, (r) => r.status === 'running', 5000, 'the slow run on h0');
  await runWhen(a.host, fast.runId, (r) => r.status === 'running', 5000, 'the quick run on h0');
  b.host.resume();
  const stopping = a.host.stop({ graceMs: 600 });
  setTimeout(() => quick.open(), 100);
  const later = await b.host.trigger('jobs', { params: { ms: 10 } });
  await stopping;
  const fastRun = await finalOn(b.host, fast.runId);
  t.match(fastRun, { status: 'succeeded', host: 'h0' }, 'finished within the grace on the stopping host');
  const slowRun = await runWhen(b.host, slow.runId, (r) => r.status === 'running' && r.host === 'h1', 5000, 'taken over by h1');
  t.match(slowRun.attempts[0], { n: 1, error: { code: 'SHUTDOWN' } }, 'the aborted attempt is recorded with reason shutdown');
  t.equal(slowRun.attempts[1]?.n, 2, 'and it runs again, attempt 2, on the other host');
  t.equal((await finalOn(b.host, later.runId)).host, 'h1', 'new runs go to the hosts still up');
  t.same(
    a.of('run.queued').map((e) => e.data.runId),
    [fast.runId, slow.runId, slow.runId],
    'h0 saw the aborted run go back to queued',
  );
  await b.host.cancel(slow.runId);
});

t.test('a database number Redis does not have, and a user without the permissions jobhost needs: the start fails, saying why', async (t) => {
  const redis = await startRedis(t);
  const start = async (url: string): Promise<unknown> => {
    const host = createHost({ config: { backend: { kind: 'redis', url, prefix: freshPrefix() } }, logger: captureLogger().logger });
    const err = await host.start().catch((e: unknown) => e);
    await host.stop({ graceMs: 0 });
    return err;
  };
  // A Redis has 16 databases unless told otherwise: /99 is none of them (it used to go on in database 0).
  const noDb = await start(`${redis.url}/99`);
  t.ok(isHostError(noDb) && noDb.code === 'BACKEND_UNAVAILABLE', 'BACKEND_UNAVAILABLE');
  t.match((noDb as Error).message, /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+\/99 \(ERR DB index is out of range: this Redis has no database/);
  const admin = redis.client();
  t.equal(await admin.dbsize(), 0, 'nothing written to database 0');

  await admin.call('ACL', 'SETUSER', 'keyless', 'on', '>keyless-pw', '~other:*', '&*', '+@all');
  await admin.call('ACL', 'SETUSER', 'noeval', 'on', '>noeval-pw', '~*', '&*', '+@all', '-eval', '-evalsha');
  const port = new URL(redis.url).port;
  for (const [user, pw] of [
    ['keyless', 'keyless-pw'],
    ['noeval', 'noeval-pw'],
  ] as const) {
    const err = await start(`redis://${user}:${pw}@127.0.0.1:${port}`);
    t.ok(isHostError(err) && err.code === 'BACKEND_UNAVAILABLE', `${user}: BACKEND_UNAVAILABLE`);
    t.match(
      (err as Error).message,
      /Redis at redis:\/\/127\.0\.0\.1:\d+ refused jobhost's set-up \(NOPERM: the Redis user lacks a permission jobhost needs/,
      user,
    );
    t.notMatch((err as Error).message, new RegExp(pw), 'no password');
  }
});

t.test('a stop with nothing running does not wait the grace for a fetch a frozen Redis never answers', async (t) => {
  const redis = await startRedis(t);
  const clock = createManualClock(Date.now());
  const { logger, lines } = captureLogger();
  const [a] = await startCluster(t, redis, 1, { plugins: [definePlugin({ name: 'idle', handler: () => 1 })], clockOf: () => clock, loggerOf: () => logger });
  // Frozen (SIGSTOP): connections stay up, nothing answers, as in a network fault.
  process.kill(redis.pid, 'SIGSTOP');
  t.teardown(() => void process.kill(redis.pid, 'SIGCONT'));
  // The periodic sweep marks the job's queue ready: a fetch goes out that Redis never answers.
  await clock.advance(5_000);
  let stopped = false;
  const stopping = a!.host.stop({ graceMs: 3_600_000 }).then(() => (stopped = true));
  // Only the fetch bound passes on the host's clock, never the hour of grace.
  await until(
    async () => {
      await clock.advance(500);
      return stopped;
    },
    30_000,
    'the stop to end',
  );
  await stopping;
  t.notOk(
    lines.some((l) => Array.isArray(l['runs'])),
    'no warning naming aborted runs: none was',
  );
});
