import t from 'tap';
import { definePlugin } from '../../../core/contract/plugin.js';
import type { ClusterView } from '../../../core/contract/views.js';
import { createServer } from '../../../core/server/server.js';
import { freshPrefix, startCluster } from '../../cluster.js';
import { gate, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** `GET /cluster` on the redis backend: heartbeats, running counts, job versions, drift, leaving. */

t.test('three hosts see each other with their jobs and running counts; an edited schedule on one is drift on every host; a stopped host leaves', async (t) => {
  const redis = await startRedis(t);
  const hold = gate();
  const plugins = [
    definePlugin({ name: 'tick', schedule: '0 0 * * *', handler: () => 1 }),
    definePlugin({ name: 'slow', concurrency: 5, handler: () => hold.promise }),
  ];
  const hosts = await startCluster(t, redis, 3, { prefix: freshPrefix(), plugins });
  const ids = (v: ClusterView): string[] => v.hosts.map((h) => h.id);
  await until(() => hosts.every((h) => h.host.cluster().hosts.length === 3), 5000, 'every host to see three');
  for (const h of hosts) {
    const view = h.host.cluster();
    t.equal(view.backend, 'redis');
    t.equal(view.self, h.host.id);
    t.same(ids(view).sort(), ['h0', 'h1', 'h2'], `${h.host.id} sees all three`);
    t.same(view.drift, [], 'no drift');
  }
  const versions = new Set(hosts[0]!.host.cluster().hosts.flatMap((h) => h.jobs.map((j) => `${j.name}@${j.version}`)));
  t.equal(versions.size, 2, 'the same two job versions on every host');

  const server = createServer(hosts[0]!.host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());
  const { runId } = await hosts[1]!.host.trigger('slow');
  await until(
    () =>
      hosts[0]!.host
        .cluster()
        .hosts.map((h) => h.running)
        .reduce((a, b) => a + b, 0) === 1,
    5000,
    'h0 to see one run running somewhere',
  );
  const body = (await (await fetch(`${url}/cluster`)).json()) as ClusterView;
  t.equal(
    body.hosts.reduce((n, h) => n + h.running, 0),
    1,
    'GET /cluster counts the running run on the host that runs it',
  );
  hold.open();
  await hosts[1]!.host.wait(runId);

  // An edited schedule on h2 (its plugin file changed): drift, seen from every host.
  hosts[2]!.host.register(definePlugin({ name: 'tick', schedule: '0 12 * * *', handler: () => 1 }));
  await until(() => hosts.every((h) => h.host.cluster().drift.length === 1), 5000, 'drift on every host');
  for (const h of hosts) {
    t.match(h.host.cluster().drift, [{ job: 'tick', hosts: ['h0', 'h1', 'h2'] }], `${h.host.id} shows tick drifting`);
  }
  const res = await fetch(`${url}/ready`);
  const ready = (await res.json()) as { ready: boolean; warnings: unknown[] };
  t.equal(res.status, 200, '/ready stays 200 with drift');
  t.equal(ready.ready, true);
  t.match(ready.warnings, [{ code: 'CLUSTER_DRIFT', job: 'tick', hosts: ['h0', 'h1', 'h2'] }], 'and warns about it');
  hosts[2]!.host.register(definePlugin({ name: 'tick', schedule: '0 0 * * *', handler: () => 1 }));
  await until(() => hosts.every((h) => h.host.cluster().drift.length === 0), 5000, 'the drift gone once h2 is back in line');

  await hosts[2]!.host.stop({ graceMs: 0 });
  await until(() => ids(hosts[0]!.host.cluster()).length === 2, 3000, 'h2 to leave');
  t.same(ids(hosts[0]!.host.cluster()).sort(), ['h0', 'h1'], 'a host that stops leaves at once');
});
