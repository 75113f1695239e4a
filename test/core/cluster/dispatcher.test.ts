import t from 'tap';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, startCluster } from '../../cluster.js';
import { gate, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** Where and when runs start across hosts: limits, order, timing, weights, which hosts. */

/** A handler that counts how many of its runs are in flight at once (the hosts share this process). */
function meter() {
  let now = 0;
  let max = 0;
  const byHost = new Map<string, number>();
  return {
    get max() {
      return max;
    },
    byHost,
    async run(ms: number) {
      now++;
      max = Math.max(max, now);
      await new Promise((r) => setTimeout(r, ms));
      now--;
    },
  };
}

t.test("a job's concurrency is a cluster-wide limit; the host's concurrency is its own", async (t) => {
  const redis = await startRedis(t);
  const m = meter();
  const hosts = await startCluster(t, redis, 3, {
    config: { concurrency: 8 },
    plugins: [definePlugin({ name: 'limited', concurrency: 2, handler: () => m.run(40) })],
  });
  const ids = await Promise.all(hosts.flatMap(({ host }) => Array.from({ length: 6 }, () => host.trigger('limited'))));
  for (const { runId } of ids) await finalOn(hosts[0]!.host, runId);
  t.equal(m.max, 2, 'never more than 2 at once across 3 hosts with 8 slots each');

  const n = meter();
  const one = await startCluster(t, redis, 1, {
    config: { concurrency: 1 },
    first: 5,
    plugins: [definePlugin({ name: 'wide', concurrency: 10, handler: () => n.run(20) })],
  });
  const runs = await Promise.all(Array.from({ length: 6 }, () => one[0]!.host.trigger('wide')));
  for (const { runId } of runs) await finalOn(one[0]!.host, runId);
  t.equal(n.max, 1, 'a host with concurrency 1 runs one at a time');
});

t.test("overlap: 'queue' runs strictly one after another, in trigger order, across hosts", async (t) => {
  const redis = await startRedis(t);
  const m = meter();
  const order: number[] = [];
  const hosts = await startCluster(t, redis, 3, {
    plugins: [
      definePlugin({
        name: 'serial',
        overlap: 'queue',
        handler: async (ctx) => {
          order.push((ctx.params as { i: number }).i);
          await m.run(10);
        },
      }),
    ],
  });
  for (const h of hosts) h.host.pause();
  const ids = [];
  for (let i = 0; i < 9; i++) ids.push(await hosts[i % 3]!.host.trigger('serial', { params: { i } }));
  for (const h of hosts) h.host.resume();
  for (const { runId } of ids) await finalOn(hosts[0]!.host, runId);
  t.equal(m.max, 1);
  t.same(order, [0, 1, 2, 3, 4, 5, 6, 7, 8], 'FIFO');
});

t.test('priority: lower first, FIFO within a priority, whichever host triggered', async (t) => {
  const redis = await startRedis(t);
  const order: number[] = [];
  const hosts = await startCluster(t, redis, 2, {
    config: { concurrency: 1 },
    plugins: [
      definePlugin({
        name: 'ranked',
        concurrency: 1,
        handler: (ctx) => void order.push((ctx.params as { p: number }).p),
      }),
    ],
  });
  for (const h of hosts) h.host.pause();
  const ps = [5, 0, -3, 1_000_000, -1_000_000, 0, 2, -3];
  const ids = [];
  for (const [i, p] of ps.entries()) ids.push(await hosts[i % 2]!.host.trigger('ranked', { priority: p, params: { p } }));
  hosts[1]!.host.resume();
  for (const { runId } of ids) await finalOn(hosts[0]!.host, runId);
  t.same(order, [-1_000_000, -3, -3, 0, 0, 2, 5, 1_000_000]);
});

t.test('delay and runAt: a run never starts before its time, and starts soon after it', async (t) => {
  const redis = await startRedis(t);
  const started = new Map<string, number>();
  const hosts = await startCluster(t, redis, 2, {
    plugins: [definePlugin({ name: 'timed', handler: (ctx) => void started.set(ctx.runId, Date.now()) })],
  });
  const t0 = Date.now();
  const a = await hosts[0]!.host.trigger('timed', { delay: 400 });
  const at = Date.now() + 700;
  const b = await hosts[1]!.host.trigger('timed', { runAt: new Date(at) });
  const runA = await finalOn(hosts[1]!.host, a.runId);
  const runB = await finalOn(hosts[0]!.host, b.runId);
  t.ok(started.get(a.runId)! >= t0 + 400, `delay 400: started after ${started.get(a.runId)! - t0} ms`);
  t.ok(started.get(b.runId)! >= at, 'runAt: not before it');
  // Under the 5 s sweep that would catch a missed one, with room for a loaded machine's stalls.
  t.ok(started.get(b.runId)! < at + 4000, `and soon after (${started.get(b.runId)! - at} ms late)`);
  t.equal(runA.runAt, new Date(Date.parse(runA.createdAt) + 400).toISOString(), 'runAt recorded');
  t.equal(runB.runAt, new Date(at).toISOString());
});

t.test('delayed runs of one job each start at their own time, not the earliest one only', async (t) => {
  const redis = await startRedis(t);
  const started = new Map<string, number>();
  const [host] = await startCluster(t, redis, 1, {
    plugins: [definePlugin({ name: 'timed', handler: (ctx) => void started.set(ctx.runId, Date.now()) })],
  });
  // Several waiting at once: the timer is armed for the earliest, and each wake-up arms the next.
  const due = new Map<string, number>();
  for (const delay of [300, 600, 900, 1200]) {
    const run = await host!.host.trigger('timed', { delay });
    due.set(run.runId, Date.parse((await host!.host.run(run.runId))!.runAt));
  }
  for (const [id, at] of due) {
    await finalOn(host!.host, id);
    const late = started.get(id)! - at;
    // The periodic sweep (5 s) would catch a missed one much later; the bound leaves room for stalls.
    t.ok(late >= 0 && late < 4000, `started ${late} ms after its runAt`);
  }
});

t.test('a run executes only on a host that has its job loaded', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 3, {
    config: { concurrency: 4 },
    pluginsOf: (i) => [
      definePlugin({ name: 'everywhere', concurrency: 10, handler: () => 'x' }),
      ...(i === 2 ? [definePlugin({ name: 'only-h2', concurrency: 10, handler: () => 'y' })] : []),
    ],
  });
  const ids = await Promise.all(Array.from({ length: 12 }, () => hosts[2]!.host.trigger('only-h2')));
  const runs = await Promise.all(ids.map(({ runId }) => finalOn(hosts[0]!.host, runId)));
  t.same(new Set(runs.map((r) => r.host)), new Set(['h2']), 'all on h2');
  const spread = await Promise.all(Array.from({ length: 30 }, (_, i) => hosts[i % 3]!.host.trigger('everywhere')));
  const ended = await Promise.all(spread.map(({ runId }) => finalOn(hosts[1]!.host, runId)));
  t.equal(new Set(ended.map((r) => r.id)).size, 30, 'run ids are unique across hosts');
  t.ok(ended.every((r) => r.status === 'succeeded'));
});

t.test('weighted queues: a backed-up host serves them by weight', async (t) => {
  const redis = await startRedis(t);
  const order: string[] = [];
  const release = gate();
  const plugin = (name: string, queue: string) =>
    definePlugin({
      name,
      queue,
      concurrency: 100,
      handler: async () => {
        order.push(queue);
        await release.promise;
      },
    });
  const hosts = await startCluster(t, redis, 1, {
    config: { concurrency: 9, queues: { critical: 6, default: 2, low: 1 } },
    plugins: [plugin('crit', 'critical'), plugin('norm', 'default'), plugin('slow', 'low')],
  });
  const host = hosts[0]!.host;
  host.pause();
  const ids = [];
  for (const job of ['crit', 'norm', 'slow']) for (let i = 0; i < 12; i++) ids.push(await host.trigger(job));
  host.resume();
  await until(() => order.length === 9, 5000, 'nine starts');
  const counts = { critical: 0, default: 0, low: 0 } as Record<string, number>;
  for (const q of order) counts[q]!++;
  t.same(counts, { critical: 6, default: 2, low: 1 }, '6:2:1 of the first 9 starts');
  release.open();
  for (const { runId } of ids) await finalOn(host, runId);
});

t.test('a job removed from a host: its running run finishes there, its waiting runs stay in Redis until a host has the job again', async (t) => {
  const redis = await startRedis(t);
  const hold = gate();
  const plugin = definePlugin({
    name: 'removable',
    handler: async (ctx) => {
      if ((ctx.params as { hold?: boolean }).hold) await hold.promise;
      return 'done';
    },
  });
  const [a] = await startCluster(t, redis, 1, { plugins: [plugin] });
  const host = a!.host;
  const first = await host.trigger('removable', { params: { hold: true } });
  await until(async () => (await host.run(first.runId))?.status === 'running', 5000, 'the first run to start');
  const second = await host.trigger('removable', { params: {} });
  // The second waits behind the first (concurrency 1) when the job goes away.
  t.equal(host.unregister('removable'), true);
  hold.open();
  t.equal((await finalOn(host, first.runId)).status, 'succeeded', 'the running run finished on the old definition');
  // Room for a wrong host to take it: the stream wakes hosts within milliseconds of the first run's end.
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await host.run(second.runId))?.status, 'queued', 'the waiting one stays queued: no host has the job');
  host.register(plugin);
  t.equal((await finalOn(host, second.runId)).status, 'succeeded', 'and runs once the job is back');
});
