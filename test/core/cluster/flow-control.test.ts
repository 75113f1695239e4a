import t from 'tap';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/**
 * `debounce` and `rateLimit` (SPEC §13) on the redis backend, hosts in this process on one
 * private redis-server: a debounce window is BullMQ deduplication on a delayed job, shared by
 * every host; the limit is BullMQ's limiter on the job's queue. Real time: BullMQ's delays and
 * its limiter's windows run on Redis and the hosts' clocks.
 */

t.test('debounce across hosts: triggers on two hosts within the window become one run with the last params; run.queued once', async (t) => {
  const redis = await startRedis(t);
  const got: Array<{ params: unknown; at: number }> = [];
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'settles',
        debounce: '1500ms',
        isolation: 'inline',
        handler: (ctx) => void got.push({ params: ctx.params, at: Date.now() }),
      }),
    ],
  });
  const [a, b] = [hosts[0]!.host, hosts[1]!.host];
  const first = await a.trigger('settles', { params: { v: 1 } });
  await new Promise((r) => setTimeout(r, 300));
  const second = await b.trigger('settles', { params: { v: 2 } });
  await new Promise((r) => setTimeout(r, 300));
  // Taken before the trigger: the window counts from the host's own time, which is after this
  // whatever the answer's latency (a Redis that fsyncs every write may take long to answer).
  const lastAt = Date.now();
  const last = await a.trigger('settles', { params: { v: 3 } });
  t.equal(second.runId, first.runId, 'the trigger on the other host answers with the same run');
  t.equal(last.runId, first.runId);
  const run = await finalOn(b, first.runId);
  t.equal(run.status, 'succeeded');
  t.same(
    got.map((g) => g.params),
    [{ v: 3 }],
    'one run, with the last trigger params',
  );
  t.ok(got[0]!.at >= lastAt + 1400, `started once the window was quiet (${got[0]!.at - lastAt} ms after the last trigger)`);
  const queued = hosts.flatMap((h) => h.of('run.queued'));
  t.equal(queued.length, 1, 'run.queued emitted once over both hosts');
  // The window closed when the run became due: the next trigger opens a new one.
  const next = await b.trigger('settles', { params: { v: 4 } });
  t.not(next.runId, first.runId);
  t.equal((await finalOn(a, next.runId)).status, 'succeeded');
  t.same(
    got.map((g) => g.params),
    [{ v: 3 }, { v: 4 }],
  );
});

t.test('rateLimit on the redis backend: set on the job queue, starts held until the window closes, the job view shows it', async (t) => {
  const redis = await startRedis(t);
  const starts: number[] = [];
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'limited',
        concurrency: 20,
        rateLimit: { max: 2, per: '1500ms' },
        isolation: 'inline',
        handler: () => void starts.push(Date.now()),
      }),
    ],
  });
  const [a, b] = [hosts[0]!.host, hosts[1]!.host];
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await (i % 2 ? a : b).trigger('limited')).runId);
  for (const id of ids) t.equal((await finalOn(a, id)).status, 'succeeded');
  starts.sort((x, y) => x - y);
  const span = starts.at(-1)! - starts[0]!;
  t.ok(span >= 2 * 1500 - 200, `6 starts at 2 per 1.5 s take at least two more windows (${span} ms)`);
  t.match(a.job('limited')!.rateLimit, { max: 2, perMs: 1500 });
});

t.test('rateLimit on the redis backend: a config edit that lifts or raises the limit starts the runs it held at once (as on one host)', async (t) => {
  const redis = await startRedis(t);
  const started = new Set<string>();
  const [h] = await startCluster(t, redis, 1, {
    plugins: [
      definePlugin({
        name: 'limited',
        concurrency: 20,
        rateLimit: { max: 1, per: '60s' },
        isolation: 'inline',
        handler: (ctx) => void started.add(ctx.runId),
      }),
    ],
  });
  const host = h!.host;
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await host.trigger('limited')).runId);
  t.equal((await finalOn(host, ids[0]!)).status, 'succeeded', 'the first start of the window');
  // The next fetch finds the queue at its limit: the worker holds off for the window's 60 s.
  await until(() => host.job('limited')?.rateLimit?.waiting === 3, 5000, 'the limit holds three runs');
  t.equal(started.size, 1);

  host.applyConfig({ ...host.config, jobs: { limited: { rateLimit: { max: 2, per: '60s' } } } });
  t.equal((await finalOn(host, ids[1]!)).status, 'succeeded', 'raised to 2: the second start of the window goes at once');
  t.equal(started.size, 2, 'and only it: the window still counts the first');

  host.applyConfig({ ...host.config, jobs: { limited: { rateLimit: null } } });
  for (const id of ids.slice(2)) t.equal((await finalOn(host, id)).status, 'succeeded', 'lifted: the rest start at once');
});
