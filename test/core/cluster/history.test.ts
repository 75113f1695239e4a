import t from 'tap';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** History in Redis: every host pages through the runs of all hosts, newest first, with filters, cursors and retention. */

t.test('pages of runs of every host: newest first, by job and status, with a cursor; one run by id from any host', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 3, {
    plugins: [
      definePlugin({ name: 'alpha', concurrency: 10, handler: () => 'a' }),
      definePlugin({
        name: 'beta',
        concurrency: 10,
        handler: () => {
          throw new Error('beta fails');
        },
      }),
    ],
  });
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push((await hosts[i % 3]!.host.trigger(i % 3 === 0 ? 'beta' : 'alpha')).runId);
  for (const id of ids) await finalOn(hosts[0]!.host, id);
  const newestFirst = [...ids].reverse();
  for (const { host } of hosts) {
    const all = await host.runs({ limit: 100 });
    t.same(
      all.items.map((r) => r.id),
      newestFirst,
      `${host.id}: all 12, newest first`,
    );
    t.notOk(all.next, 'no cursor past the end');
  }
  const { host } = hosts[1]!;
  const first = await host.runs({ limit: 5 });
  t.same(
    first.items.map((r) => r.id),
    newestFirst.slice(0, 5),
  );
  t.equal(first.next, newestFirst[4], 'next is the last id of the page');
  const second = await host.runs({ limit: 5, before: first.next! });
  t.same(
    second.items.map((r) => r.id),
    newestFirst.slice(5, 10),
  );
  const failed = await host.runs({ status: 'failed', limit: 100 });
  t.same(
    failed.items.map((r) => r.id),
    newestFirst.filter((_, i) => (11 - i) % 3 === 0),
    'status filter',
  );
  t.ok(failed.items.every((r) => r.job === 'beta' && r.error?.message === 'beta fails'));
  const alpha = await host.runs({ job: 'alpha', limit: 3 });
  t.ok(
    alpha.items.every((r) => r.job === 'alpha'),
    'job filter',
  );
  t.equal(alpha.items.length, 3);
  t.ok(alpha.next);
  const one = await hosts[2]!.host.run(ids[4]!);
  t.match(one, { id: ids[4], job: 'alpha', status: 'succeeded', result: 'a', source: 'api' });
  t.ok(['h0', 'h1', 'h2'].includes(one!.host!), 'it says which host ran it');
  t.equal(await host.run('0000000000000zzz'), undefined, 'an unknown id');
  t.equal(await host.run('x:y'), undefined, 'an id that is not one');
});

t.test('retention: keepRuns per job (BullMQ removeOnComplete/removeOnFail); the index follows', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, {
    config: { store: { keepRuns: 3 } },
    plugins: [definePlugin({ name: 'kept', handler: () => 'k' })],
  });
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) {
    const { runId } = await hosts[i % 2]!.host.trigger('kept');
    await finalOn(hosts[0]!.host, runId);
    ids.push(runId);
  }
  const page = await hosts[1]!.host.runs({ limit: 100 });
  t.same(
    page.items.map((r) => r.id),
    ids.slice(-3).reverse(),
    'the newest 3 runs of the job are kept',
  );
  t.equal(await hosts[0]!.host.run(ids[0]!), undefined, 'an older one is gone');
  const index = await redis.client().zcard(`${(hosts[0]!.host.config.backend as { prefix: string }).prefix}:__jh:runs`);
  t.equal(index, 3, 'and its index entries were dropped by the page that walked over them');
  await until(() => hosts[0]!.host.job('kept')!.counts.succeeded === 8, 5000, 'lifetime counts outlive retention');
});

t.test('run logs are kept in Redis: the lines a handler logged on one host are read on another, bounded', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'chatty',
        handler: (ctx) => {
          ctx.log.info({ step: 1 }, 'starting');
          for (let i = 0; i < 600; i++) ctx.log.debug(`line ${i}`);
          ctx.log.warn('done');
          return 'ok';
        },
      }),
    ],
  });
  hosts[1]!.host.pause();
  const { runId } = await hosts[1]!.host.trigger('chatty');
  await finalOn(hosts[1]!.host, runId);
  let log: { lines: Array<{ msg: string; level: string; fields?: unknown }>; dropped: number } | undefined;
  await until(
    async () => {
      log = (await hosts[1]!.host.runLog(runId))?.log;
      return log !== undefined && log.lines.at(-1)?.msg === 'done';
    },
    5000,
    'the log lines',
  );
  t.equal(log!.lines.length, 500, 'the newest 500 lines');
  t.equal(log!.dropped, 102, 'the 102 older ones counted as dropped');
  t.match(log!.lines.at(-1), { level: 'warn', msg: 'done', attempt: 1 });
  await t.rejects(hosts[1]!.host.runLog('0000000000000zzz'), { code: 'RUN_NOT_FOUND' }, 'an unknown run');
});
