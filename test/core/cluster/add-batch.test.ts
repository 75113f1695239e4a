import { Redis } from 'ioredis';
import t from 'tap';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { startCluster } from '../../cluster.js';
import { startRedis } from '../../redis.js';

/**
 * The adds of one event-loop turn go to Redis in one MULTI (core/cluster/add-batch.ts): fewer
 * EXECs than triggers, and each trigger still gets its own answer (a refusal stays that trigger's).
 */

/** How many EXECs redis-server has run so far (INFO commandstats). */
async function execs(client: Redis): Promise<number> {
  const info = await client.info('commandstats');
  return Number(/^cmdstat_exec:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

/** Triggers `job` `n` times in one turn; returns the admitted run ids and the refusal reasons. */
async function burst(host: import('../../../core/engine/host.js').Host, job: string, n: number, options: { key?: string } = {}) {
  const outcomes = await Promise.allSettled(Array.from({ length: n }, () => host.trigger(job, options)));
  const admitted = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.runId] : []));
  const refused = outcomes.flatMap((o) => (o.status === 'rejected' && isHostError(o.reason) ? [o.reason.details?.['reason'] as string] : []));
  return { admitted, refused, total: outcomes.length };
}

t.test('triggers of one turn share one MULTI; each is acknowledged with its run in Redis', async (t) => {
  const redis = await startRedis(t);
  const client = new Redis(redis.url);
  t.teardown(() => client.disconnect());
  const [h] = await startCluster(t, redis, 1, { plugins: [definePlugin({ name: 'work', handler: () => 'ok' })] });
  h!.host.pause();
  const before = await execs(client);
  const { admitted } = await burst(h!.host, 'work', 200);
  const used = (await execs(client)) - before;
  t.equal(new Set(admitted).size, 200, 'every trigger admitted with its own run id');
  t.ok(used < 20, `200 triggers in one turn took ${used} EXECs, not one each`);
  for (const id of admitted.slice(0, 5)) t.equal((await h!.host.run(id))?.status, 'queued', `run ${id} is in Redis`);
});

t.test('a refusal in a shared MULTI is its own trigger’s: once and a dedup key, mixed with plain adds', async (t) => {
  const redis = await startRedis(t);
  const [h] = await startCluster(t, redis, 1, {
    plugins: [
      definePlugin({ name: 'plain', handler: () => 'ok' }),
      definePlugin({ name: 'setup', once: true, handler: () => 'ok' }),
      definePlugin({ name: 'keyed', handler: () => 'ok' }),
    ],
  });
  h!.host.pause();
  const [plain, once, keyed] = await Promise.all([burst(h!.host, 'plain', 20), burst(h!.host, 'setup', 20), burst(h!.host, 'keyed', 20, { key: 'k' })]);
  t.equal(plain.admitted.length, 20, 'plain triggers are all admitted');
  t.equal(once.admitted.length, 1, 'one run of the once-only job');
  t.strictSame(once.refused, Array(19).fill('once'), 'the others refused as once, each with its own error');
  t.equal(keyed.admitted.length, 1, 'one run with the key');
  t.strictSame(keyed.refused, Array(19).fill('duplicate'), 'the others refused as duplicates');
  t.equal(h!.of('run.skipped').length, 38, 'one run.skipped per refused trigger');
  t.equal(h!.of('run.queued').length, 22, 'one run.queued per admitted trigger');
});
