import { Worker } from 'bullmq';
import t from 'tap';
import { z } from 'zod';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, freshPrefix, runWhen, startCluster } from '../../cluster.js';
import { gate, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** Attempts in cluster mode: retries, timeouts, progress, results and notifications, seen from every host. */

t.test('retries: backoff with cap and jitter, attempts recorded, run.retrying on the host that ran it, then success', async (t) => {
  const redis = await startRedis(t);
  const starts: number[] = [];
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'flaky',
        retry: { attempts: 4, backoff: 'exponential', delay: 100, maxDelay: 250, jitter: 0.2 },
        handler: (ctx) => {
          starts.push(Date.now());
          if (ctx.attempt < 4) throw Object.assign(new Error(`no luck ${ctx.attempt}`), { code: 'FLAKY' });
          return { attempt: ctx.attempt };
        },
      }),
    ],
  });
  // h0 triggers but takes no runs: every attempt runs on h1.
  hosts[0]!.host.pause();
  const { runId } = await hosts[0]!.host.trigger('flaky');
  const run = await finalOn(hosts[0]!.host, runId);
  t.match(run, { status: 'succeeded', result: { attempt: 4 }, host: 'h1', maxAttempts: 4 });
  t.same(
    run.attempts.map((a) => [a.n, a.error?.code ?? null]),
    [
      [1, 'FLAKY'],
      [2, 'FLAKY'],
      [3, 'FLAKY'],
      [4, null],
    ],
    'every attempt kept, with its error',
  );
  // random() = 0.5 in the test hosts: jitter is zero, so the delays are 100, 200, then the 250 cap.
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  t.ok(gaps[0]! >= 95 && gaps[1]! >= 195 && gaps[2]! >= 245, `gaps ${gaps.join(', ')} ms respect 100, 200, 250 (capped)`);
  t.ok(gaps[2]! < 245 + 2000, 'and the capped one is not the uncapped 400 plus slack');
  const retrying = hosts[1]!.of('run.retrying').map((e) => [e.data.attempt, e.data.delayMs, e.data.error.code]);
  t.same(retrying, [
    [1, 100, 'FLAKY'],
    [2, 200, 'FLAKY'],
    [3, 250, 'FLAKY'],
  ]);
  t.equal(hosts[0]!.of('run.retrying').length, 0, 'the triggering host ran nothing');
  t.same(
    hosts[0]!.of('run.queued').map((e) => e.data.runId),
    [runId],
    'it saw the run queued',
  );
});

t.test('a timeout aborts ctx.signal with TIMEOUT, fails the attempt at once and retries; a late result is ignored', async (t) => {
  const redis = await startRedis(t);
  const reasons: string[] = [];
  const hosts = await startCluster(t, redis, 1, {
    plugins: [
      definePlugin({
        name: 'slow',
        timeout: 150,
        retry: { attempts: 2, delay: 10 },
        handler: (ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              reasons.push((ctx.signal.reason as { code: string }).code);
              setTimeout(() => resolve('late'), 50);
            });
          }),
      }),
    ],
  });
  const { runId } = await hosts[0]!.host.trigger('slow');
  const run = await finalOn(hosts[0]!.host, runId);
  t.equal(run.status, 'failed');
  t.same(
    run.attempts.map((a) => a.error?.code),
    ['TIMEOUT', 'TIMEOUT'],
  );
  t.equal(run.error?.code, 'TIMEOUT');
  t.same(reasons, ['TIMEOUT', 'TIMEOUT'], 'the signal said why');
  t.equal(run.result, null, 'the late result is not the run’s');
});

t.test('progress of a run on one host is seen from another host (GET run), throttled, last value kept', async (t) => {
  const redis = await startRedis(t);
  const step = gate();
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'steps',
        handler: async (ctx) => {
          for (let i = 1; i <= 50; i++) ctx.progress(i / 100, `step ${i}`);
          await step.promise;
          ctx.progress(1, 'done');
          return 'ok';
        },
      }),
    ],
  });
  hosts[0]!.host.pause();
  const { runId } = await hosts[0]!.host.trigger('steps');
  const mid = await runWhen(hosts[0]!.host, runId, (r) => r.progress.text === 'step 50', 5000, 'the last progress value');
  t.match(mid, { status: 'running', host: 'h1', progress: { fraction: 0.5, text: 'step 50' } });
  t.ok(hosts[1]!.of('run.progress').length < 10, `throttled: ${hosts[1]!.of('run.progress').length} run.progress events for 50 calls`);
  step.open();
  t.match(await finalOn(hosts[0]!.host, runId), { status: 'succeeded', progress: { fraction: 1, text: 'done' } });
});

t.test('params are validated on the triggering host; results are JSON copies read from any host', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'typed',
        params: z.object({ n: z.number().int().min(1) }),
        handler: (ctx) => ({ doubled: ctx.params.n * 2, at: new Date(0), nested: { list: [1, 'two', null] } }),
      }),
    ],
  });
  const bad = await hosts[0]!.host.trigger('typed', { params: { n: 0 } }).catch((e: unknown) => e);
  t.ok(isHostError(bad) && bad.code === 'INVALID_PARAMS', 'INVALID_PARAMS');
  const { runId } = await hosts[0]!.host.trigger('typed', { params: { n: 21 } });
  const run = await finalOn(hosts[1]!.host, runId);
  t.same(run.result, { doubled: 42, at: '1970-01-01T00:00:00.000Z', nested: { list: [1, 'two', null] } });
  t.same(run.params, { n: 21 });
});

t.test('one notification per outcome, stored once, listed by every host', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 3, {
    plugins: [
      definePlugin({
        name: 'noisy',
        retry: { attempts: 2, delay: 10 },
        concurrency: 10,
        notify: { on: ['succeeded', 'failed', 'retrying'] },
        handler: (ctx) => {
          if ((ctx.params as { fail?: boolean }).fail) throw new Error('asked to fail');
          return 'fine';
        },
      }),
    ],
  });
  const ids = await Promise.all(hosts.flatMap(({ host }, i) => [host.trigger('noisy', { params: {} }), host.trigger('noisy', { params: { fail: i === 0 } })]));
  for (const { runId } of ids) await finalOn(hosts[2]!.host, runId);
  // 6 runs: 5 succeed, 1 fails after one retry: 5 + 1 retrying + 1 failed notifications.
  const emitted = hosts.flatMap((h) => h.of('notification').map((e) => `${e.data.runId}:${e.data.status}`));
  t.equal(emitted.length, 7, 'emitted once each, on the host that ended the attempt');
  t.equal(new Set(emitted).size, 7);
  for (const { host } of hosts) {
    const page = await host.notifications({ limit: 100 });
    t.same(page.items.map((n) => `${n.runId}:${n.status}`).sort(), [...emitted].sort(), `${host.id} lists all 7`);
  }
  const failedOnly = await hosts[1]!.host.notifications({ job: 'noisy', limit: 2 });
  t.equal(failedOnly.items.length, 2);
  t.ok(failedOnly.next, 'a cursor to the next page');
  const rest = await hosts[1]!.host.notifications({ job: 'noisy', limit: 100, before: failedOnly.next! });
  t.equal(rest.items.length, 5);
});

t.test('counts and stats on every host cover the runs of all hosts', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 3, {
    plugins: [
      definePlugin({
        name: 'counted',
        concurrency: 10,
        handler: (ctx) => {
          if ((ctx.params as { fail?: boolean }).fail) throw new Error('no');
          return 1;
        },
      }),
    ],
  });
  const ids = await Promise.all(
    hosts.flatMap(({ host }) => [host.trigger('counted'), host.trigger('counted'), host.trigger('counted', { params: { fail: true } })]),
  );
  for (const { runId } of ids) await finalOn(hosts[0]!.host, runId);
  for (const { host } of hosts) {
    await until(() => host.job('counted')!.counts.succeeded === 6 && host.job('counted')!.counts.failed === 3, 5000, `counts on ${host.id}`);
    const stats = host.stats();
    t.match(stats.totals, { runs: 9, succeeded: 6, failed: 3 }, `${host.id}: totals of the cluster`);
    t.equal(stats.perJob['counted']!.count, 9);
  }
});

t.test('a run whose host died mid-attempt: the attempt counts INTERRUPTED; with no attempt left the run fails, else it runs again', async (t) => {
  const redis = await startRedis(t);
  let ran = 0;
  const plugins = [
    definePlugin({ name: 'once-only', handler: () => void ran++ }),
    definePlugin({ name: 'twice', retry: { attempts: 2 }, handler: () => void ran++ }),
  ];
  const prefix = freshPrefix();
  const [trigger] = await startCluster(t, redis, 1, { prefix, plugins });
  trigger!.host.pause();
  const a = await trigger!.host.trigger('once-only');
  const b = await trigger!.host.trigger('twice');
  // A host that takes both runs with BullMQ and dies: no renewal, no end written.
  for (const name of ['once-only', 'twice']) {
    const dead = new Worker(name, null, { connection: redis.client(), prefix, lockDuration: 1000, name: 'dead-host' });
    const job = await dead.getNextJob('dead-token');
    t.ok(job, `the dead host took a run of ${name}`);
    await dead.close(true);
  }
  const [survivor] = await startCluster(t, redis, 1, { prefix, plugins, first: 1 });
  const failed = await finalOn(survivor!.host, a.runId);
  t.match(failed, { status: 'failed', error: { code: 'INTERRUPTED' }, attempts: [{ n: 1, error: { code: 'INTERRUPTED' } }] });
  const rerun = await finalOn(survivor!.host, b.runId);
  t.match(rerun, { status: 'succeeded', source: 'recovery', origin: 'api', host: 'h1' });
  t.same(
    rerun.attempts.map((x) => [x.n, x.error?.code ?? null]),
    [
      [1, 'INTERRUPTED'],
      [2, null],
    ],
  );
  t.equal(ran, 1, 'only the rerun ran a handler');
  t.same(
    survivor!.of('run.queued').map((e) => e.data.runId),
    [b.runId],
    'the survivor announced the run queued again',
  );
  t.same(
    survivor!.of('run.failed').map((e) => e.data.runId),
    [a.runId],
  );
});

t.test(
  'a run taken over by the host still running it (its lock lapsed while Redis was away): the late end of the old attempt leaves the new one held',
  async (t) => {
    const redis = await startRedis(t);
    const first = gate();
    const second = gate();
    const attempts: number[] = [];
    const prefix = freshPrefix();
    const [h] = await startCluster(t, redis, 1, {
      prefix,
      backend: { lockDuration: 2000, stalledInterval: 1000 },
      plugins: [
        definePlugin({
          name: 'long',
          retry: { attempts: 3 },
          handler: async (ctx) => {
            attempts.push(ctx.attempt);
            await (ctx.attempt === 1 ? first : second).promise;
            return ctx.attempt;
          },
        }),
      ],
    });
    const { runId } = await h!.host.trigger('long');
    await until(() => attempts.length === 1, 10_000, 'the first attempt started');
    await redis.stop();
    // Away longer than the lock (2 s here, not the helpers' 1 s: a stall of a loaded machine must not
    // let a lock lapse): once Redis is back, the stalled check hands the run out again
    // and this host takes it over (the first attempt, still running here, counts INTERRUPTED).
    const away = Date.now();
    await until(() => Date.now() - away > 2500, 5000, 'the lock lapsed (2 s)');
    await redis.restart();
    await until(() => attempts.length === 2, 15_000, 'the run taken over: a second attempt runs');
    const lock = `${prefix}:long:${runId}:lock`;
    // The old attempt ends: BullMQ refuses its end (late). The new attempt's lock must go on being renewed.
    first.open();
    const endedAt = Date.now();
    await until(() => Date.now() - endedAt > 6000, 8000, 'three lock durations');
    t.equal(await redis.client().exists(lock), 1, 'the lock of the second attempt is still held');
    t.same(attempts, [1, 2], 'not found stalled and run a third time');
    second.open();
    const run = await finalOn(h!.host, runId);
    t.equal(run.status, 'succeeded');
    t.same(
      run.attempts.map((x) => [x.n, x.error?.code ?? null]),
      [
        [1, 'INTERRUPTED'],
        [2, null],
      ],
    );
    t.equal(run.result, 2, 'the second attempt result');
  },
);
