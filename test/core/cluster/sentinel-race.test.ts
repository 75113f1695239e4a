import t from 'tap';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost, type Host } from '../../../core/engine/host.js';
import { freshPrefix } from '../../cluster.js';
import { captureLogger, until } from '../../helpers.js';
import { startSentinelSet } from '../../redis-ha.js';

/**
 * A failover that lands while a connection is reconnecting (keep-connected.ts). Through Sentinel,
 * ioredis ends a connection for good when Sentinel's `+switch-master` reaches its failover detector
 * while a reconnect is asking a Sentinel where the master is. The Sentinels answer slowly here
 * (each behind a proxy that holds its replies, the address it announces), so after the master is
 * killed the reconnects spend most of their time asking, and the switch lands during one of them.
 * Before keep-connected.ts the host then answered 503 "Connection is closed." for ever.
 */

/** Triggers `job` until one is acknowledged (503 BACKEND_* while the failover lasts), for at most `ms`. */
async function acknowledged(host: Host, job: string, ms: number): Promise<{ runId: string; after: number }> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    try {
      const { runId } = await host.trigger(job);
      return { runId, after: Date.now() - t0 };
    } catch (err) {
      if (!isHostError(err) || !/^BACKEND_/.test(err.code)) throw err;
      last = err.message;
      if (Date.now() - t0 > ms) throw new Error(`no trigger acknowledged within ${ms} ms; the last refusal: ${last}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

t.test('a master killed while the host asks a slow Sentinel for it: every connection comes back, triggers are acknowledged and run again', async (t) => {
  const set = await startSentinelSet(t, { slowMs: 400 });
  const logs = captureLogger();
  const host = createHost({
    config: {
      backend: {
        kind: 'redis',
        url: 'redis://127.0.0.1:6379',
        prefix: freshPrefix(),
        lockDuration: 1000,
        stalledInterval: 500,
        sentinels: set.sentinels,
        name: set.name,
      },
      cluster: { id: 'h0' },
    },
    logger: logs.logger,
    plugins: [definePlugin({ name: 'count', handler: () => 'ok' })],
  });
  t.teardown(() => host.stop({ graceMs: 0 }));
  await host.start();
  const before = await acknowledged(host, 'count', 5000);
  await until(async () => (await host.run(before.runId))?.status === 'succeeded', 10_000, 'the run before the failover to succeed');

  const master = await set.masterPort();
  await set.master.kill9();
  await until(async () => (await set.masterPort()) !== master, 30_000, 'Sentinel to name a new master');
  // The failover took a few seconds; with the fix, the connections are back within a few more.
  const after = await acknowledged(host, 'count', 20_000);
  t.pass(`a trigger was acknowledged again ${after.after} ms after Sentinel named the new master`);
  await until(async () => (await host.run(after.runId))?.status === 'succeeded', 15_000, 'the run after the failover to succeed');
  t.pass('the run triggered after the failover ran');
  t.ok(host.storeHealth().backend.available, '/ready: Redis reachable');
  const revived = (): unknown[] => logs.lines.filter((l) => /connecting it again/.test(String(l['msg']))).map((l) => l['connection']);
  const byFailover = revived();
  t.comment(`connections ended by the failover and connected again: ${JSON.stringify(byFailover)}`);
  await host.stop({ graceMs: 1000 });
  t.same(revived(), byFailover, 'a stop ends its connections for good: none is connected again');
});
