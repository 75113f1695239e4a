import { Worker } from 'bullmq';
import t from 'tap';
import type { ClusterHost } from '../cluster.js';
import { freshPrefix, startCluster } from '../cluster.js';
import type { Subject } from '../conformance/subject.js';
import { conformance } from '../conformance/suite.js';
import { until } from '../helpers.js';
import { startRedis } from '../redis.js';

/**
 * The conformance suite (test/conformance/suite.ts) on the redis backend: one private redis-server
 * for the file, a fresh key prefix per test, the real clock (Redis and BullMQ keep time by it).
 */

const BOUND_MS = 15_000;
const redis = await startRedis(t);

function subject(h: ClusterHost): Subject {
  return {
    host: h.host,
    of: h.of,
    now: () => Date.now(),
    until: (check, what) => until(check, BOUND_MS, what),
  };
}

conformance(t, {
  name: 'redis',
  async start(t, plugins, options = {}) {
    const [h] = await startCluster(t, redis, 1, { plugins, ...(options.config && { config: options.config }) });
    return subject(h!);
  },
  async crashed(t, plugins, jobs) {
    const prefix = freshPrefix();
    const [first] = await startCluster(t, redis, 1, { prefix, plugins: plugins(true) });
    first!.host.pause();
    const runIds: string[] = [];
    for (const job of jobs) runIds.push((await first!.host.trigger(job)).runId);
    // A host that takes the runs with BullMQ and dies: no lock renewal, no end written.
    for (const job of jobs) {
      const dead = new Worker(job, null, { connection: redis.client(), prefix, lockDuration: 1000, name: 'dead-host' });
      if (!(await dead.getNextJob('dead-token'))) throw new Error(`the dead host found no run of ${job} to take`);
      await dead.close(true);
    }
    await first!.host.stop({ graceMs: 0 });
    const [next] = await startCluster(t, redis, 1, { prefix, plugins: plugins(false), first: 1 });
    return { subject: subject(next!), runIds };
  },
});
