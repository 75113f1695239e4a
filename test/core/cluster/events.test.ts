import t from 'tap';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createServer } from '../../../core/server/server.js';
import { freshPrefix, startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** Events of every host on every host's bus (the cluster stream), with `data.host`. */

t.test('a run triggered and run on h1 ends on h0’s bus too: h0.wait() resolves, every event tagged h1, numbered by h0', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const [h0, h1] = await startCluster(t, redis, 2, {
    prefix,
    pluginsOf: (i) => (i === 1 ? [definePlugin({ name: 'only-h1', handler: () => 'ok' })] : []),
  });
  const { runId } = await h1!.host.trigger('only-h1');
  const run = await h0!.host.wait(runId);
  t.equal(run.status, 'succeeded', 'h0 waited for the end of a run it neither triggered nor ran');
  await until(() => h0!.all.some((e) => e.type === 'run.succeeded'), 5000, 'run.succeeded on h0');
  const ofRun = h0!.all.filter((e) => 'runId' in e.data && e.data.runId === runId);
  t.same(
    ofRun.map((e) => [e.type, e.data.host]),
    [
      ['run.queued', 'h1'],
      ['run.started', 'h1'],
      ['run.succeeded', 'h1'],
    ],
    'queued, started, succeeded, each with data.host h1',
  );
  const seqs = h0!.all.map((e) => e.seq);
  t.same(
    seqs,
    seqs.map((_, i) => i + 1),
    'h0 numbers them in its own seq, one by one',
  );
  t.notOk(
    h1!.all.some((e) => e.data.host !== undefined && e.data.host === 'h1'),
    'a host never receives its own events back',
  );
  await h1!.host.disable('only-h1');
  await until(() => h0!.all.some((e) => e.type === 'job.disabled' && e.data.host === 'h1'), 5000, "h1's job.disabled on h0");
  t.pass("h1's host-local job.disabled reached h0, tagged");
});

t.test('entries another host wrote are checked one event at a time: malformed ones are left, the rest relayed', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const [h0] = await startCluster(t, redis, 1, { prefix });
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.url);
  t.teardown(() => client.disconnect());
  const stream = `${prefix}:__cluster:events`;
  const at = new Date().toISOString();
  const ok = (job: string) => ['job.enabled', at, { job }];
  const events = [ok('a'), ['no.such.type', at, { job: 'x' }], ['job.enabled', 5, { job: 'x' }], ['job.enabled', at, { job: 5 }], ['job.enabled', at], ok('b')];
  await client.xadd(stream, '*', 'event', 'host.event', 'host', 'hx', 'events', JSON.stringify(events));
  await client.xadd(stream, '*', 'event', 'host.event', 'host', 'hx', 'events', '{not json');
  await client.xadd(stream, '*', 'event', 'host.event', 'host', '', 'events', JSON.stringify([ok('no-host')]));
  await client.xadd(stream, '*', 'event', 'host.event', 'host', 'hx', 'type', 'job.enabled', 'at', at, 'data', JSON.stringify({ job: 'c' }));
  await client.xadd(stream, '*', 'event', 'host.event', 'host', 'hx', 'type', 'job.enabled', 'at', at, 'data', '[1]');
  await until(() => h0!.all.some((e) => e.data.job === 'c'), 5000, 'the single entry relayed');
  t.same(
    h0!.all.filter((e) => e.data.host === 'hx').map((e) => [e.type, e.data.job]),
    [
      ['job.enabled', 'a'],
      ['job.enabled', 'b'],
      ['job.enabled', 'c'],
    ],
    'the well-formed events, in order, and nothing else',
  );
});

t.test("a run this host added and started: its run.queued comes before its run.started, though the worker may take it before the add's reply", async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const [h0] = await startCluster(t, redis, 1, { plugins: [definePlugin({ name: 'quick', isolation: 'inline', concurrency: 50, handler: () => 1 })] });
  // Over HTTP: the add's answer waits for its audit record too, a worker of this host has all the more time to take the run.
  const server = createServer(h0!.host, { port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());
  const trigger = async (): Promise<string> => {
    const res = await fetch(`${url}/jobs/quick/run`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    return ((await res.json()) as { runId: string }).runId;
  };
  const ids = await Promise.all(Array.from({ length: 200 }, trigger));
  await until(() => h0!.of('run.succeeded').length === ids.length, 20_000, 'every run ended');
  const order = new Map<string, string[]>();
  for (const e of h0!.events) {
    const runId = (e.data as { runId?: string }).runId;
    if (runId && (e.type === 'run.queued' || e.type === 'run.started')) order.set(runId, [...(order.get(runId) ?? []), e.type]);
  }
  const wrong = ids.filter((id) => order.get(id)?.join() !== 'run.queued,run.started');
  t.same(
    wrong.map((id) => `${id}: ${order.get(id)?.join()}`),
    [],
    `every one of ${ids.length} runs: queued once, then started`,
  );
});
