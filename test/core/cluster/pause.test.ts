import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import t from 'tap';
import { finalOn, freshPrefix, startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** SPEC §13 in cluster mode: a pause taken by one host holds on every host, through Redis, and outlives the hosts. */

const config = { queues: { default: 2, low: 1 } };

t.test('a job paused on one host starts on none; the queue of jobhost likewise; resume on another host starts the waiting runs', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const ran: string[] = [];
  const plugins = [
    { name: 'work', concurrency: 5, handler: () => void ran.push('work') },
    { name: 'bulk', queue: 'low', concurrency: 5, handler: () => void ran.push('bulk') },
    { name: 'other', concurrency: 5, handler: () => void ran.push('other') },
  ];
  const [h0, h1, h2] = await startCluster(t, redis, 3, { prefix, config, plugins });

  await h0!.host.pauses.job('work', true);
  // BullMQ's own pause: the job's queue is paused in Redis for every worker.
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue('work', { connection, prefix });
  t.teardown(async () => {
    await queue.close();
    connection.disconnect();
  });
  t.equal(await queue.isPaused(), true, "BullMQ's queue of the job is paused");
  await until(() => [h1, h2].every((h) => h!.host.job('work')?.paused === true), 10_000, 'the other hosts to show the pause');
  t.ok(
    [h1, h2].every((h) => h!.all.some((e) => e.type === 'job.paused' && e.data.job === 'work' && e.data.host === 'h0')),
    'the other hosts relay job.paused (their WebSocket clients see it)',
  );

  const held = [(await h1!.host.trigger('work')).runId, (await h2!.host.trigger('work')).runId];
  // Runs of a job that is not paused go through on every host meanwhile: the dispatchers are live.
  const others = await Promise.all([h0, h1, h2].map(async (h) => (await h!.host.trigger('other')).runId));
  for (const id of others) t.equal((await finalOn(h0!.host, id)).status, 'succeeded');
  for (const id of held) t.equal((await h0!.host.run(id))?.status, 'queued', 'the paused job’s run waits');
  t.notOk(ran.includes('work'));

  await h2!.host.pauses.job('work', false);
  t.equal(await queue.isPaused(), false);
  for (const id of held) t.equal((await finalOn(h1!.host, id)).status, 'succeeded', 'resumed on another host: the waiting runs start');

  // A jobhost queue: a record every host reads; their dispatchers pick no job of it.
  await h1!.host.pauses.queue('low', true);
  await until(() => [h0, h2].every((h) => h!.host.pauses.list().queues.includes('low')), 10_000, 'every host to know the queue is paused');
  const bulk = (await h0!.host.trigger('bulk')).runId;
  const more = await Promise.all([h0, h1, h2].map(async (h) => (await h!.host.trigger('other')).runId));
  for (const id of more) await finalOn(h2!.host, id);
  t.equal((await h2!.host.run(bulk))?.status, 'queued', 'a run of a paused queue waits on every host');
  await h0!.host.pauses.queue('low', false);
  t.equal((await finalOn(h1!.host, bulk)).status, 'succeeded');
});

t.test('pauses outlive the hosts: a new host on the same Redis finds them and holds the runs', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const plugins = [
    { name: 'work', handler: () => 'ok' },
    { name: 'bulk', queue: 'low', handler: () => 'ok' },
  ];
  const [first] = await startCluster(t, redis, 1, { prefix, config, plugins });
  await first!.host.pauses.job('work', true);
  await first!.host.pauses.queue('low', true);
  const work = (await first!.host.trigger('work')).runId;
  const bulk = (await first!.host.trigger('bulk')).runId;
  await first!.host.stop({ graceMs: 0 });

  const [second] = await startCluster(t, redis, 1, { prefix, config, plugins, first: 1 });
  t.same(second!.host.pauses.list(), { jobs: ['work'], queues: ['low'] });
  t.equal((await second!.host.run(work))?.status, 'queued');
  t.equal((await second!.host.run(bulk))?.status, 'queued');
  await second!.host.pauses.queue('low', false);
  await second!.host.pauses.job('work', false);
  t.equal((await finalOn(second!.host, work)).status, 'succeeded');
  t.equal((await finalOn(second!.host, bulk)).status, 'succeeded');
});
