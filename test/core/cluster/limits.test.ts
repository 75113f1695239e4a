import t from 'tap';
import { definePlugin } from '../../../core/contract/plugin.js';
import { startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/**
 * limits.maxQueued on the redis backend: the cluster's waiting runs (BullMQ's waiting and delayed
 * counts per job queue, as each host's mirror reads them every half second), plus the host's own
 * adds at once.
 */

t.test("maxQueued counts every host's waiting runs: QUEUE_FULL on the host that added them at once, on another after its mirror read", async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, {
    config: { limits: { maxQueued: 3 } },
    plugins: [definePlugin({ name: 'later', overlap: 'allow', handler: () => null })],
  });
  const [a, b] = [hosts[0]!.host, hosts[1]!.host];
  for (let i = 0; i < 3; i++) await a.trigger('later', { delay: '1h' });
  await t.rejects(a.trigger('later'), { code: 'QUEUE_FULL', details: { maxQueued: 3, retryAfter: 5 } }, 'its own adds count at once');
  await until(() => b.stats().totals.delayed === 3, 5000, "the other host's mirror to read the delayed runs");
  await t.rejects(b.trigger('later', { delay: '1h' }), { code: 'QUEUE_FULL' });
  t.equal((await b.runs({ job: 'later' })).items.length, 3, 'nothing past the limit was added');
});
