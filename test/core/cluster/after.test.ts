import t from 'tap';
import { z } from 'zod';
import { definePlugin } from '../../../core/contract/plugin.js';
import type { Run } from '../../../core/contract/run.js';
import { afterRunId } from '../../../core/engine/ids.js';
import { finalOn, startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** `after` in cluster mode: the children of an end go in with the end, once, whichever host ends it. */

const plugins = [
  definePlugin({
    name: 'extract',
    concurrency: 4,
    retry: { attempts: 1 },
    params: z.object({ n: z.number(), fail: z.boolean().default(false) }),
    handler: (ctx) => {
      if (ctx.params.fail) throw new Error('extract failed');
      return { rows: ctx.params.n };
    },
  }),
  definePlugin({
    name: 'load',
    concurrency: 4,
    after: [{ job: 'extract' }],
    params: z.object({ runId: z.string(), result: z.object({ rows: z.number() }) }).transform((p) => ({ rows: p.result.rows, from: p.runId })),
    handler: (ctx) => ctx.params.rows * 10,
  }),
  definePlugin({ name: 'on-failure', after: [{ job: 'extract', status: 'failed' }], handler: () => 'noted' }),
  definePlugin({ name: 'off', enabled: false, after: [{ job: 'extract', status: 'finished' }], handler: () => 'never' }),
  definePlugin({ name: 'on-cancel', after: [{ job: 'extract', status: 'canceled' }], handler: (ctx) => ctx.params }),
];

async function allRuns(host: { runs(q: { job: string; limit: number }): Promise<{ items: Run[] }> }, job: string): Promise<Run[]> {
  return (await host.runs({ job, limit: 1000 })).items;
}

t.test('two hosts: each end adds its children once, in the write that records it', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, { plugins });
  const [h0, h1] = [hosts[0]!.host, hosts[1]!.host];
  const parents: string[] = [];
  for (let n = 0; n < 8; n++) parents.push((await (n % 2 === 0 ? h0 : h1).trigger('extract', { params: { n, fail: n === 7 } })).runId);
  for (const id of parents) await finalOn(h0, id);
  for (const [n, id] of parents.entries()) {
    if (n === 7) continue;
    const child = await finalOn(h1, afterRunId(id, 'load'));
    t.match(child, { status: 'succeeded', source: 'after', after: { runId: id, job: 'extract' }, params: { rows: n, from: id }, result: n * 10 });
  }
  const failedChild = await finalOn(h0, afterRunId(parents[7]!, 'on-failure'));
  t.match(failedChild, { status: 'succeeded', source: 'after', params: { runId: parents[7], job: 'extract', status: 'failed', result: null } });
  t.equal((await allRuns(h0, 'load')).length, 7, 'one load run per succeeded extract, cluster-wide');
  t.equal((await allRuns(h1, 'on-failure')).length, 1);
  t.equal((await allRuns(h0, 'off')).length, 0, 'a disabled child is refused by its admission');
  // The refusal is reported once, by the host whose write ended the parent.
  await until(() => hosts.reduce((sum, h) => sum + h.of('run.skipped').filter((e) => e.data.job === 'off').length, 0) === 8, 5000, 'eight skips of off');
  // Every host hears of each child once: the end's write shared its run.queued.
  await until(
    () => hosts.every((h) => h.all.filter((e) => e.type === 'run.queued' && e.data.job === 'load').length === 7),
    5000,
    'run.queued of every load on both hosts',
  );
});

t.test('the gate: a child is added only when its parent is in the finished set, and once per parent', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 1, { plugins });
  const h0 = hosts[0]!.host;
  const { runId } = await h0.trigger('extract', { params: { n: 1 } });
  await finalOn(h0, afterRunId(runId, 'load'));
  // The same end written again (a retried moveToFinished after a lost reply): nothing new.
  const { Redis } = await import('ioredis');
  const { defineScripts } = await import('../../../core/cluster/scripts.js');
  const client = defineScripts(new Redis(redis.url));
  t.teardown(() => client.quit());
  const prefix = (h0.config.backend as { prefix: string }).prefix;
  const childHash = `${prefix}:load:${afterRunId(runId, 'load')}`;
  const gate = (client as unknown as { jhAfterGate(...a: string[]): Promise<number> }).jhAfterGate.bind(client);
  t.equal(
    await gate(`${prefix}:extract:completed`, childHash, `${prefix}:extract:${runId}`, runId, 'jhAfter:load'),
    2,
    'a second write of the end finds the mark',
  );
  t.equal(await client.hexists(childHash, '__jh_refused_kept'), 1, "the existing child is marked so BullMQ's add and ADMITTED leave it as it is");
  await client.hdel(childHash, '__jh_refused_kept');
  t.equal(
    await gate(`${prefix}:extract:completed`, `${prefix}:load:nope`, `${prefix}:extract:nope`, 'nope', 'jhAfter:load'),
    0,
    'a parent not in the finished set adds nothing',
  );
  t.equal(await client.hexists(`${prefix}:load:nope`, '__jh_refused'), 1);
  t.equal((await allRuns(h0, 'load')).length, 1);
});

t.test('a waiting run canceled (BullMQ removes its job, nothing finishes it) still triggers what waits for its cancel, once', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, { plugins });
  const [h0, h1] = [hosts[0]!.host, hosts[1]!.host];
  const { runId } = await h0.trigger('extract', { params: { n: 3 }, delay: '1h' });
  t.match(await h1.cancel(runId), { status: 'canceled' }, 'canceled by the other host');
  const child = await finalOn(h0, afterRunId(runId, 'on-cancel'));
  t.match(child, {
    status: 'succeeded',
    source: 'after',
    after: { runId, job: 'extract' },
    result: { runId, job: 'extract', status: 'canceled', result: null },
  });
  t.equal((await allRuns(h0, 'on-cancel')).length, 1, 'one run, cluster-wide');
  t.equal((await allRuns(h0, 'load')).length, 0, 'a cancel is not a success');
});
