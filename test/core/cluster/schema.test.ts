import t from 'tap';
import { REDIS_SCHEMA } from '../../../core/cluster/schema.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost } from '../../../core/engine/host.js';
import { freshPrefix, startCluster } from '../../cluster.js';
import { captureLogger } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** The key schema stamp under a prefix (core/cluster/schema.ts). */

t.test('the first host stamps `<prefix>:schema`; a second host of the same version starts beside it', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const client = redis.client();
  t.equal(await client.get(`${prefix}:schema`), null);
  const [a, b] = await startCluster(t, redis, 2, { prefix, plugins: [definePlugin({ name: 'x', handler: () => 1 })] });
  t.equal(await client.get(`${prefix}:schema`), String(REDIS_SCHEMA));
  const { runId } = await a!.host.trigger('x');
  t.equal((await b!.host.wait(runId)).status, 'succeeded');
});

t.test('a prefix stamped with a newer schema: the host does not start (BACKEND_SCHEMA_UNSUPPORTED) and writes nothing under it', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const client = redis.client();
  await client.set(`${prefix}:schema`, String(REDIS_SCHEMA + 1));
  await client.set(`${prefix}:other`, 'theirs');
  const before = (await client.keys(`${prefix}*`)).sort();
  const host = createHost({
    config: { backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 1000, stalledInterval: 500 }, cluster: { id: 'old' } },
    plugins: [definePlugin({ name: 'x', schedule: '* * * * *', handler: () => 1 })],
    logger: captureLogger().logger,
  });
  await t.rejects(host.start(), { code: 'BACKEND_SCHEMA_UNSUPPORTED', details: { schema: String(REDIS_SCHEMA + 1), supported: REDIS_SCHEMA } });
  await host.stop({ graceMs: 0 });
  t.same((await client.keys(`${prefix}*`)).sort(), before, 'no key written or removed');
  t.equal(await client.get(`${prefix}:schema`), String(REDIS_SCHEMA + 1), 'the stamp left as it was');
});

t.test('a stamp that is not a schema number is refused too', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  await redis.client().set(`${prefix}:schema`, 'garbage');
  const host = createHost({
    config: { backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 1000, stalledInterval: 500 }, cluster: { id: 'x' } },
    logger: captureLogger().logger,
  });
  await t.rejects(host.start(), { code: 'BACKEND_SCHEMA_UNSUPPORTED', message: /schema "garbage"/ });
  await host.stop({ graceMs: 0 });
});
