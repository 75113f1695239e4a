import { Queue, Worker } from 'bullmq';
import t from 'tap';
import { Connections } from '../../../core/cluster/connections.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost } from '../../../core/engine/host.js';
import { createServer } from '../../../core/server/server.js';
import { freshPrefix } from '../../cluster.js';
import { captureLogger, gate, type Tap, until } from '../../helpers.js';
import { startRedis, type TestRedis } from '../../redis.js';

/**
 * The connections' timeouts (core/cluster/connections.ts) against a frozen Redis: SIGSTOP keeps
 * its sockets open (the kernel still accepts and acknowledges) while nothing answers, which is
 * what a black-holed network looks like to a client.
 */

function freeze(t: Tap, redis: TestRedis): () => void {
  const pid = redis.pid;
  process.kill(pid, 'SIGSTOP');
  let thawed = false;
  const thaw = (): void => {
    if (thawed) return;
    thawed = true;
    process.kill(pid, 'SIGCONT');
  };
  t.teardown(thaw);
  return thaw;
}

function soloHost(redis: TestRedis, plugins: ReturnType<typeof definePlugin>[]) {
  return createHost({
    config: {
      backend: { kind: 'redis', url: redis.url, prefix: freshPrefix(), lockDuration: 30_000, stalledInterval: 15_000, commandTimeout: 1000 },
      cluster: { id: 'solo' },
    },
    logger: captureLogger().logger,
    plugins,
  });
}

t.test(
  'a frozen Redis: a trigger fails within commandTimeout, the host reports Redis down, and a run that ended meanwhile lands once it answers',
  async (t) => {
    const redis = await startRedis(t);
    const release = gate();
    const host = soloHost(redis, [
      definePlugin({
        name: 'work',
        handler: async () => {
          await release.promise;
          return 'done';
        },
      }),
    ]);
    await host.start();
    t.teardown(() => host.stop({ graceMs: 0 }));
    const { runId } = await host.trigger('work');
    await until(async () => (await host.run(runId))?.status === 'running', 10_000, 'the run started');

    const thaw = freeze(t, redis);
    release.open(); // its end is written on the patient connection, which keeps it until Redis answers
    const started = Date.now();
    const err = await host.trigger('work').catch((e: unknown) => e);
    t.match(err, { code: 'BACKEND_UNAVAILABLE' }, 'the trigger is refused, not left hanging');
    t.ok(Date.now() - started < 5000, `within about commandTimeout (${Date.now() - started} ms)`);
    // The producer's socket heard nothing for commandTimeout: dropped, so Redis is reported down and
    // later requests are refused at once rather than each waiting out the timeout.
    await until(() => !host.storeHealth().backend.available, 5000, 'Redis reported out of reach');
    const refusedAt = Date.now();
    await t.rejects(host.trigger('work'), { code: 'BACKEND_UNAVAILABLE' });
    t.ok(Date.now() - refusedAt < 500, 'refused at once while down');

    thaw();
    await until(() => host.storeHealth().backend.available, 15_000, 'Redis reachable again');
    t.equal((await host.wait(runId)).status, 'succeeded', 'the end written while Redis was frozen landed');
    const again = await host.trigger('work');
    t.ok(again.runId, 'triggers are accepted again');
  },
);

t.test('a stop while Redis is frozen ends within its bounds', async (t) => {
  const redis = await startRedis(t);
  const host = soloHost(redis, [definePlugin({ name: 'work', handler: () => 'done' })]);
  await host.start();
  const { runId } = await host.trigger('work');
  t.equal((await host.wait(runId)).status, 'succeeded');
  freeze(t, redis);
  const started = Date.now();
  await host.stop({ graceMs: 0 });
  t.ok(Date.now() - started < 15_000, `stopped in ${Date.now() - started} ms`);
});

t.test('a Redis whose maxmemory-policy is not noeviction: a warning at start and on /ready; none with noeviction', async (t) => {
  const redis = await startRedis(t);
  await redis.client().config('SET', 'maxmemory-policy', 'allkeys-lru');
  const { logger, lines } = captureLogger();
  const host = createHost({
    config: { backend: { kind: 'redis', url: redis.url, prefix: freshPrefix(), lockDuration: 1000, stalledInterval: 500 }, cluster: { id: 'lru' } },
    logger,
  });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  t.match(
    lines.filter((l) => l['code'] === 'REDIS_MAXMEMORY_POLICY'),
    [{ level: 40, policy: 'allkeys-lru' }],
    'logged at warn',
  );
  const server = createServer(host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());
  const ready = (await (await fetch(`${url}/ready`)).json()) as { warnings: Array<{ code: string; message: string }> };
  t.match(ready.warnings, [{ code: 'REDIS_MAXMEMORY_POLICY', message: /allkeys-lru/ }]);

  await redis.client().config('SET', 'maxmemory-policy', 'noeviction');
  const { logger: quiet, lines: none } = captureLogger();
  const other = createHost({
    config: { backend: { kind: 'redis', url: redis.url, prefix: freshPrefix(), lockDuration: 1000, stalledInterval: 500 }, cluster: { id: 'ok' } },
    logger: quiet,
  });
  await other.start();
  t.teardown(() => other.stop({ graceMs: 0 }));
  t.same(
    none.filter((l) => l['code'] === 'REDIS_MAXMEMORY_POLICY'),
    [],
  );
  t.same(other.storeHealth().warnings, []);
});

t.test('a BullMQ Worker whose blocking connection is refused at its first connect takes its jobs once Redis lets it in', async (t) => {
  // What the delivery worker of a host that starts as Redis restarts meets: its blocking
  // connection (BullMQ's copy of `commands`) fails its first connect while `commands` works. A
  // lazy copy was connected by BullMQ with that one connect, whose failure BullMQ kept: the
  // Worker waited for ever and took no delivery again. Here Redis refuses the copy (maxclients).
  const redis = await startRedis(t);
  const admin = redis.client();
  const connections = new Connections({ url: redis.url }, 'jobhost:t', captureLogger().logger);
  await connections.open();
  t.teardown(() => connections.close());
  const clients = Number(/connected_clients:(\d+)/.exec(await admin.info('clients'))![1]);
  await admin.config('SET', 'maxclients', String(clients));
  t.teardown(() => admin.config('SET', 'maxclients', '10000').catch(() => undefined));
  const prefix = freshPrefix();
  const taken: string[] = [];
  const worker = new Worker(
    'q',
    async (job) => {
      taken.push(job.id!);
    },
    { connection: connections.commands, prefix, runRetryDelay: 100 },
  );
  worker.on('error', () => undefined);
  t.teardown(() => worker.close(true).catch(() => undefined));
  const rejected = async (): Promise<number> => Number(/rejected_connections:(\d+)/.exec(await admin.info('stats'))![1]);
  await until(async () => (await rejected()) > 0, 10_000, 'the blocking connection refused');
  // The Worker found the queue empty and waits on its blocking connection.
  await until(() => (worker as unknown as { drained: boolean }).drained, 10_000, 'the worker drained');
  await admin.config('SET', 'maxclients', '10000');
  const queue = new Queue('q', { connection: { url: redis.url }, prefix });
  t.teardown(() => queue.close());
  await queue.add('x', {}, { jobId: 'one' });
  await until(() => taken.includes('one'), 15_000, 'the job taken');
  t.same(taken, ['one'], 'the job was taken once Redis let the blocking connection in');
});
