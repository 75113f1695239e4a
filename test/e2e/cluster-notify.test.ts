import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigInput } from '../../core/contract/config.js';
import type { Notification } from '../../core/contract/notification.js';
import { definePlugin } from '../../core/contract/plugin.js';
import { freshPrefix, startCluster } from '../cluster.js';
import { until } from '../helpers.js';
import { httpReceiver } from '../receivers.js';
import { startRedis } from '../redis.js';
import { makeProject, runCli } from './project.js';

/** Deliveries in cluster mode across a kill -9: a `jobhost start` process dies mid-attempt, another host makes the attempt again. */

const FAILING = `export default {
  name: 'breaks',
  isolation: 'inline',
  notify: { on: ['failed'], to: ['hook'] },
  handler() { throw new Error('x'); },
};
`;

t.test('a host killed -9 mid-attempt: another host makes the delivery again, under the same webhook-id (at least once)', async (t) => {
  const redis = await startRedis(t);
  const hook = await httpReceiver(t);
  // The first attempt gets no answer: the host making it is killed while it waits.
  hook.script('hang');
  const prefix = freshPrefix();
  const notifications = { destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } }, retry: { delay: '200ms' } };
  const dir = makeProject(
    t,
    { server: { port: 0 }, backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 1000, stalledInterval: 500 }, cluster: { id: 'a' }, notifications },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins/breaks.mjs'), FAILING);
  const a = runCli(t, dir, ['start']);
  const line = await a.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'a started', { ms: 30_000 });
  const res = await fetch(`${line['url'] as string}/jobs/breaks/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(res.status, 202);
  await hook.count(1, 20_000);
  a.child.kill('SIGKILL');
  await a.exited;

  const [b] = await startCluster(t, redis, 1, {
    prefix,
    first: 1,
    config: { notifications } as ConfigInput,
    plugins: [definePlugin({ name: 'breaks', isolation: 'inline', notify: { on: ['failed'], to: ['hook'] }, handler: () => 1 })],
  });
  await hook.count(2, 20_000);
  const id = hook.received[0]!.headers['webhook-id'];
  t.ok(id);
  t.equal(hook.received[1]!.headers['webhook-id'], id, 'the same webhook-id');
  let n: Notification | undefined;
  await until(
    async () => {
      n = (await b!.host.notifications({})).items[0];
      // The host reports the outcome once Redis answered its write; a read on another connection can see the record first.
      return n?.deliveries[0]?.status === 'delivered' && b!.of('notification.delivered').length > 0;
    },
    10_000,
    'delivered by the other host, and reported by it',
  );
  t.match(n!.deliveries[0], { id, status: 'delivered', attempts: 1 }, 'the attempt cut short was never recorded: this one is the first');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(b!.of('notification.delivered').length, 1, 'reported once, by the host that made it');
  t.equal(hook.received.length, 2, 'not made a third time');
});
