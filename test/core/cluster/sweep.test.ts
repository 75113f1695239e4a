import t from 'tap';
import { PRUNE_AFTER } from '../../../core/cluster/sweep.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost } from '../../../core/engine/host.js';
import { freshPrefix } from '../../cluster.js';
import { captureLogger } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/**
 * Retention under sustained load (core/cluster/sweep.ts): BullMQ's removeOnComplete removes the
 * runs past keepRuns, and the history index entries it leaves are dropped as fast as runs are
 * added, so the index and Redis's memory level off instead of growing with every run. (Issue 25
 * asks for 200 runs/s; this machine's share of 2 loaded cores gives what it gives, and the
 * bound below scales with the rate measured.)
 */

const RUNS = 8000;
const IN_FLIGHT = 500;
const KEEP = 1000;

t.test(
  `${RUNS} runs back to back with keepRuns ${KEEP}: the history index stays within keepRuns plus a bounded slack, and Redis memory levels off`,
  async (t) => {
    const redis = await startRedis(t, { appendfsync: 'everysec' });
    const prefix = freshPrefix();
    const host = createHost({
      config: {
        backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000 },
        cluster: { id: 'solo' },
        store: { keepRuns: KEEP },
        concurrency: 32,
      },
      logger: captureLogger().logger,
      plugins: [definePlugin({ name: 'noop', handler: () => 1 })],
    });
    await host.start();
    t.teardown(() => host.stop({ graceMs: 0 }));
    const client = redis.client();
    const index = `${prefix}:__jh:runs`;
    const jobIndex = `${prefix}:__jh:runs:noop`;
    // Redis's memory less the streams', which grow to their caps (MAXLEN) whatever retention does.
    const usedMemory = async (): Promise<number> => {
      const used = Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
      const streams = await Promise.all([`${prefix}:__cluster:events`, `${prefix}:noop:events`].map((k) => client.memory('USAGE', k, 'SAMPLES', 0)));
      return used - streams.reduce<number>((sum, n) => sum + Number(n ?? 0), 0);
    };

    /** [runs done, cluster index size, job index size, used_memory less streams], after each window of runs. */
    const samples: Array<[number, number, number, number]> = [];
    const started = Date.now();
    for (let done = 0; done < RUNS; done += IN_FLIGHT) {
      const ids = await Promise.all(Array.from({ length: IN_FLIGHT }, async () => (await host.trigger('noop')).runId));
      await Promise.all(ids.map((id) => host.wait(id)));
      samples.push([done + IN_FLIGHT, await client.zcard(index), await client.zcard(jobIndex), await usedMemory()]);
    }
    const seconds = (Date.now() - started) / 1000;
    t.comment(`${RUNS} runs in ${seconds.toFixed(1)} s (${Math.round(RUNS / seconds)} runs/s)`);
    for (const s of samples) t.comment(`after ${s[0]} runs: index ${s[1]}, job index ${s[2]}, used_memory less streams ${(s[3] / 1e6).toFixed(2)} MB`);

    // Retention keeps KEEP completed runs; between passes the index gains at most PRUNE_AFTER plus the
    // adds of one look (a second), and a window's runs are in it while they wait or run.
    const bound = KEEP + PRUNE_AFTER + IN_FLIGHT + Math.ceil(RUNS / seconds);
    const steady = samples.filter(([n]) => n > 2 * (KEEP + PRUNE_AFTER));
    const biggest = Math.max(...steady.map(([, size]) => size));
    t.ok(biggest <= bound, `the cluster index never held more than ${bound} entries once past the first runs (at most ${biggest})`);
    t.ok(Math.max(...steady.map(([, , size]) => size)) <= bound, "and the job's index neither");

    // Memory (less the streams): the second half of the runs adds little to what the first left.
    const half = samples.find(([n]) => n >= RUNS / 2)![3];
    const end = samples.at(-1)![3];
    t.ok(end - half < 1e6, `memory levels off (${((end - half) / 1e6).toFixed(2)} MB more over the second half)`);
  },
);
