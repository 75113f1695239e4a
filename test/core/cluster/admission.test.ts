import t from 'tap';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, startCluster } from '../../cluster.js';
import { gate, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/**
 * Admission across hosts: each rule holds for the cluster, whichever host triggers, checked with
 * the add in one step (concurrent triggers from three hosts).
 */

/** Triggers from every host at once; returns the admitted run ids and the refusals. */
async function flood(hosts: Array<{ host: import('../../../core/engine/host.js').Host }>, job: string, each: number, options: { key?: string } = {}) {
  const admitted: string[] = [];
  const refused: Array<{ reason: string; runId: unknown }> = [];
  await Promise.all(
    hosts.flatMap(({ host }) =>
      Array.from({ length: each }, async () => {
        try {
          admitted.push((await host.trigger(job, options)).runId);
        } catch (err) {
          if (!isHostError(err) || err.code !== 'SKIPPED') throw err;
          refused.push({ reason: err.details!['reason'] as string, runId: err.details!['runId'] });
        }
      }),
    ),
  );
  return { admitted, refused };
}

t.test('dedup key: concurrent same-key triggers on three hosts admit one; the others name it; free again once it ends', async (t) => {
  const redis = await startRedis(t);
  const hold = gate();
  const hosts = await startCluster(t, redis, 3, { plugins: [definePlugin({ name: 'keyed', concurrency: 5, handler: () => hold.promise })] });
  const { admitted, refused } = await flood(hosts, 'keyed', 10, { key: 'order-1' });
  t.equal(admitted.length, 1, 'one run admitted out of 30 triggers');
  t.equal(refused.length, 29);
  t.ok(
    refused.every((r) => r.reason === 'duplicate' && r.runId === admitted[0]),
    'every refusal is duplicate, naming the holder',
  );
  const other = await hosts[1]!.host.trigger('keyed', { key: 'order-2' });
  t.ok(other.runId, 'another key is admitted');
  const skipped = hosts.flatMap((h) => h.of('run.skipped'));
  t.equal(skipped.length, 29, 'each refusal is a run.skipped on the host that refused it');
  hold.open();
  await finalOn(hosts[0]!.host, admitted[0]!);
  const again = await hosts[2]!.host.trigger('keyed', { key: 'order-1' });
  t.not(again.runId, admitted[0], 'once the holder ended, the key is free');
});

t.test('once: three hosts flooding triggers get exactly one success; later triggers are refused naming it', async (t) => {
  const redis = await startRedis(t);
  let runs = 0;
  const hosts = await startCluster(t, redis, 3, {
    plugins: [
      definePlugin({
        name: 'setup',
        once: true,
        concurrency: 10,
        handler: async () => {
          runs++;
          await new Promise((r) => setTimeout(r, 20));
          return 'done';
        },
      }),
    ],
  });
  const first = await flood(hosts, 'setup', 8);
  t.equal(first.admitted.length, 1, 'one run while one is waiting or running');
  t.ok(first.refused.every((r) => r.reason === 'once'));
  await finalOn(hosts[0]!.host, first.admitted[0]!);
  const later = await flood(hosts, 'setup', 5);
  t.equal(later.admitted.length, 0, 'nothing after the success');
  t.ok(
    later.refused.every((r) => r.reason === 'once' && r.runId === first.admitted[0]),
    'refused as once, naming the run that succeeded',
  );
  t.equal(runs, 1, 'the handler ran once');
});

t.test('cooldown: a success on one host refuses triggers on every host until it has passed (Redis time)', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, { plugins: [definePlugin({ name: 'cool', cooldown: 800, handler: () => 'ok' })] });
  const { runId } = await hosts[0]!.host.trigger('cool');
  const ended = await finalOn(hosts[0]!.host, runId);
  t.equal(ended.status, 'succeeded');
  const refused = await hosts[1]!.host.trigger('cool').then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isHostError(refused) && refused.code === 'SKIPPED' && refused.details!['reason'] === 'cooldown', 'the other host refuses: cooldown');
  t.match((refused as Error).message, /cooling down until \d{4}-/);
  await until(
    () =>
      hosts[1]!.host.trigger('cool').then(
        () => true,
        () => false,
      ),
    5000,
    'the cooldown to pass',
  );
  t.pass('admitted again after the cooldown');
});

t.test('overlap skip across hosts: refused while a run waits or runs anywhere; a same-key trigger says duplicate', async (t) => {
  const redis = await startRedis(t);
  const hold = gate();
  const hosts = await startCluster(t, redis, 2, { plugins: [definePlugin({ name: 'single', overlap: 'skip', handler: () => hold.promise })] });
  const { runId } = await hosts[0]!.host.trigger('single', { key: 'k1' });
  const byOther = await hosts[1]!.host.trigger('single').catch((e: unknown) => e);
  t.ok(isHostError(byOther) && byOther.details!['reason'] === 'overlap' && byOther.details!['runId'] === runId, 'overlap, naming the run');
  const sameKey = await hosts[1]!.host.trigger('single', { key: 'k1' }).catch((e: unknown) => e);
  t.ok(isHostError(sameKey) && sameKey.details!['reason'] === 'duplicate', 'the same key is a duplicate');
  const otherKey = await hosts[1]!.host.trigger('single', { key: 'k2' }).catch((e: unknown) => e);
  t.ok(isHostError(otherKey) && otherKey.details!['reason'] === 'overlap', 'another key is an overlap');
  hold.open();
  await finalOn(hosts[1]!.host, runId);
  t.ok((await hosts[1]!.host.trigger('single')).runId, 'admitted once the run ended');
});

t.test('enable/disable is cluster-wide, persisted in Redis, and announced on the other hosts', async (t) => {
  const redis = await startRedis(t);
  const plugins = [definePlugin({ name: 'toggled', handler: () => 'ok' })];
  const hosts = await startCluster(t, redis, 2, { plugins });
  await hosts[0]!.host.disable('toggled');
  const refused = await hosts[1]!.host.trigger('toggled').catch((e: unknown) => e);
  t.ok(isHostError(refused) && refused.details!['reason'] === 'disabled', 'the other host refuses at once (the check is in Redis)');
  // Admission and index are one script before BullMQ's add: the refused run left no job, no index
  // entry, and only a placeholder hash that expires by itself.
  const client = redis.client();
  const prefix = (hosts[0]!.host.config.backend as { prefix: string }).prefix;
  const [, jobKeys] = await client.scan('0', 'MATCH', `${prefix}:toggled:*`, 'COUNT', 1000);
  const placeholders: string[] = [];
  for (const key of jobKeys) if ((await client.type(key)) === 'hash' && (await client.hexists(key, '__jh_refused')) === 1) placeholders.push(key);
  t.equal(placeholders.length, 1, 'one placeholder for the refused run');
  const ttl = await client.pttl(placeholders[0]!);
  t.ok(ttl > 0 && ttl <= 10_000, `the placeholder expires by itself (${ttl} ms left)`);
  t.same(await client.hkeys(placeholders[0]!), ['__jh_refused'], "BullMQ's add wrote nothing into it");
  t.equal(await client.zcard(`${prefix}:__jh:runs`), 0, 'no index entry');
  t.equal((await client.zcard(`${prefix}:toggled:prioritized`)) + (await client.llen(`${prefix}:toggled:wait`)), 0, 'nothing queued');
  await until(() => hosts[1]!.of('job.disabled').length === 1, 5000, 'job.disabled on the other host');
  t.equal(hosts[1]!.host.job('toggled')!.enabled, false, "the other host's view says disabled");

  const [late] = await startCluster(t, redis, 1, { plugins, start: false });
  t.ok(late, 'a host of another cluster (own prefix) is not affected');
  await late!.host.start();
  t.equal(late!.host.job('toggled')!.enabled, true);

  await hosts[1]!.host.enable('toggled');
  const { runId } = await hosts[0]!.host.trigger('toggled');
  t.equal((await finalOn(hosts[0]!.host, runId)).status, 'succeeded', 'enabled again from the other host');
});

t.test('a new host joining the cluster sees the flag set before it started', async (t) => {
  const redis = await startRedis(t);
  const plugins = [definePlugin({ name: 'flagged', handler: () => 'ok' })];
  const [a] = await startCluster(t, redis, 1, { plugins, prefix: 'joined' });
  await a!.host.disable('flagged');
  const [b] = await startCluster(t, redis, 1, { plugins, prefix: 'joined', first: 1 });
  t.equal(b!.host.job('flagged')!.enabled, false, 'disabled on the newcomer');
  const refused = await b!.host.trigger('flagged').catch((e: unknown) => e);
  t.ok(isHostError(refused) && refused.details!['reason'] === 'disabled');
});
