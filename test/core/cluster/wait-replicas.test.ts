import { Redis } from 'ioredis';
import t from 'tap';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, freshPrefix, startCluster } from '../../cluster.js';
import { captureLogger, gate, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';
import { startRedis } from '../../redis.js';
import { startReplica } from '../../redis-ha.js';

/**
 * `backend.waitReplicas` (SPEC §11): an acknowledged write waits for Redis WAIT on the connection
 * that made it. With the replicas there, the acknowledgement comes once a replica has the write;
 * without enough of them within `waitTimeout`, it is refused BACKEND_NOT_REPLICATED (503), never
 * a false acknowledgement.
 */

function replicaClient(t: { teardown(fn: () => unknown): void }, port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 });
  c.on('error', () => undefined);
  t.teardown(() => c.disconnect());
  return c;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isHostError(err) ? err.code : String(err);
  }
}

t.test(
  'waitReplicas: 1: each acknowledged trigger, flag and cancel is on the replica when acknowledged; with the replica gone they are refused BACKEND_NOT_REPLICATED',
  async (t) => {
    const redis = await startRedis(t, { appendfsync: 'everysec' });
    const replica = await startReplica(t, redis.port);
    const onReplica = replicaClient(t, replica.port);
    const prefix = freshPrefix();
    const hold = gate();
    const [h] = await startCluster(t, redis, 1, {
      prefix,
      backend: { waitReplicas: 1, waitTimeout: 300 },
      plugins: [definePlugin({ name: 'work', concurrency: 1, handler: () => hold.promise.then(() => 'ok') })],
    });
    const host = h!.host;

    // The first runs, the others wait behind it: each is on the replica the moment its trigger resolves.
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { runId } = await host.trigger('work');
      ids.push(runId);
      t.equal(await onReplica.exists(`${prefix}:work:${runId}`), 1, `run ${i} is on the replica when acknowledged`);
    }
    await host.disable('work');
    t.equal(await onReplica.hget(`${prefix}:__jh:job:work`, 'enabled'), '0', 'a disable is on the replica when acknowledged');
    await host.enable('work');
    const canceled = await host.cancel(ids[19]!);
    t.equal(canceled.status, 'canceled');
    t.equal(await onReplica.exists(`${prefix}:work:${ids[19]}`), 0, 'a canceled waiting run is gone from the replica when acknowledged');

    await replica.kill9();
    const t0 = Date.now();
    t.equal(await codeOf(host.trigger('work')), 'BACKEND_NOT_REPLICATED', 'no replica: the trigger is refused, not acknowledged');
    t.ok(Date.now() - t0 < 5000, `after waitTimeout (${Date.now() - t0} ms)`);
    t.equal(await codeOf(host.disable('work')), 'BACKEND_NOT_REPLICATED', 'a disable too');
    t.equal(await codeOf(host.cancel(ids[18]!)), 'BACKEND_NOT_REPLICATED', 'a cancel too');

    // Nothing acknowledged was lost meanwhile: the runs still run, once the work is let go.
    hold.open();
    const first = await finalOn(host, ids[0]!);
    t.equal(first.status, 'succeeded', 'the acknowledged runs still run');
  },
);

t.test('waitReplicas: 0 (the default) acknowledges without a replica', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const [h] = await startCluster(t, redis, 1, { plugins: [definePlugin({ name: 'work', handler: () => 'ok' })] });
  const { runId } = await h!.host.trigger('work');
  t.equal((await finalOn(h!.host, runId)).status, 'succeeded');
});

t.test(
  'waitReplicas without the replica: a notification is recorded and delivered, and the log says it was not confirmed, not that it was not recorded',
  async (t) => {
    const redis = await startRedis(t, { appendfsync: 'everysec' });
    const hook = await httpReceiver(t);
    const log = captureLogger();
    const [h] = await startCluster(t, redis, 1, {
      backend: { waitReplicas: 1, waitTimeout: 100 },
      loggerOf: () => log.logger,
      config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: hook.url } } } },
      plugins: [
        definePlugin({
          name: 'told',
          notify: { on: ['failed'], to: ['hook'] },
          handler: () => {
            throw new Error('down');
          },
        }),
      ],
    });
    // The trigger itself is refused (not replicated), yet written: its run runs and fails.
    t.equal(await codeOf(h!.host.trigger('told')), 'BACKEND_NOT_REPLICATED');
    await hook.count(1);
    await until(async () => (await h!.host.notifications()).items.length === 1, 5000, 'the notification on record');
    t.equal(hook.received.length, 1, 'delivered once');
    const said = log.lines.filter((l) => /notification/.test(String(l['msg'])));
    t.ok(
      said.some((l) => l['msg'] === 'the notification was recorded, but not confirmed on the replicas in time' && l['level'] === 40),
      'a warning that it was not confirmed',
    );
    t.notOk(
      said.some((l) => l['msg'] === 'could not record the notification'),
      'no error that it was not recorded',
    );
  },
);
