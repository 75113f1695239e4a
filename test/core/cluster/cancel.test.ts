import { Worker } from 'bullmq';
import t from 'tap';
import { isHostError } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, freshPrefix, runWhen, startCluster } from '../../cluster.js';
import { gate, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** Cancel from any host: a waiting run is removed, a run on another host has its signal aborted there. */

t.test('a run running on one host is canceled through another: its signal is aborted there and it ends canceled at once', async (t) => {
  const redis = await startRedis(t);
  const aborted = gate<string>();
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'long',
        retry: { attempts: 3 },
        notify: { on: ['canceled'] },
        // Ignores its signal on purpose: the slot is freed and the run ends anyway.
        handler: (ctx) => {
          ctx.signal.addEventListener('abort', () => aborted.open((ctx.signal.reason as { code: string }).code));
          return new Promise(() => undefined);
        },
      }),
    ],
  });
  hosts[0]!.host.pause();
  const { runId } = await hosts[0]!.host.trigger('long');
  await runWhen(hosts[0]!.host, runId, (r) => r.status === 'running', 5000, 'running on h1');
  const t0 = Date.now();
  const canceled = await hosts[0]!.host.cancel(runId);
  t.ok(Date.now() - t0 < 3000, `answered in ${Date.now() - t0} ms`);
  t.match(canceled, { status: 'canceled', host: 'h1', error: { code: 'CANCELED' } });
  t.equal(await aborted.promise, 'CANCELED', 'the handler on h1 saw its signal aborted with CANCELED');
  t.equal(canceled.attempts.length, 1, 'no retry although attempts remain');
  t.equal(canceled.runAt, canceled.createdAt, 'runAt stays when it could start, not the cancel');
  t.ok(Date.parse(canceled.runAt) <= Date.parse(canceled.startedAt!), 'runAt is not after startedAt');
  // The answer comes once Redis has the end; the host that ran it tells its bus when BullMQ's write returns.
  await until(() => hosts[1]!.of('run.canceled').length === 1, 5000, 'run.canceled on h1');
  t.same(
    hosts[1]!.of('run.canceled').map((e) => e.data.runId),
    [runId],
    'run.canceled on the host that ran it',
  );
  await until(async () => (await hosts[0]!.host.notifications()).items.length === 1, 5000, 'the notification');
  const again = await hosts[1]!.host.cancel(runId).catch((e: unknown) => e);
  t.ok(isHostError(again) && again.code === 'RUN_FINISHED', 'a second cancel: RUN_FINISHED');
  await until(() => hosts[0]!.host.job('long')!.counts.canceled === 1, 5000, 'counted as canceled');
  t.equal(hosts[0]!.host.job('long')!.counts.failed, 0, 'not as failed');
});

t.test('a waiting run (delayed) is canceled from another host: removed, kept as canceled in history, its key freed', async (t) => {
  const redis = await startRedis(t);
  let ran = 0;
  const hosts = await startCluster(t, redis, 2, {
    plugins: [
      definePlugin({
        name: 'later',
        handler: () => {
          ran++;
          return 'ran';
        },
      }),
    ],
  });
  const { runId } = await hosts[0]!.host.trigger('later', { delay: '1h', key: 'k' });
  const canceled = await hosts[1]!.host.cancel(runId);
  t.match(canceled, { id: runId, status: 'canceled', error: { code: 'CANCELED' }, attempts: [] });
  t.match(await hosts[0]!.host.run(runId), { status: 'canceled' }, 'history keeps it on every host');
  t.same(
    (await hosts[0]!.host.runs({ status: 'canceled' })).items.map((r) => r.id),
    [runId],
  );
  const next = await hosts[0]!.host.trigger('later', { key: 'k' });
  t.equal((await finalOn(hosts[1]!.host, next.runId)).status, 'succeeded', 'the key was freed');
  t.equal(ran, 1, 'the canceled run never ran');
  t.same(
    hosts[1]!.of('run.canceled').map((e) => e.data.runId),
    [runId],
    'run.canceled on the host that canceled it',
  );
  await until(() => hosts[0]!.host.job('later')!.counts.canceled === 1, 5000, 'counted');
  t.match(hosts[0]!.host.job('later')!.lastRun, { status: 'succeeded' });
});

t.test('canceling an unknown run: RUN_NOT_FOUND; a finished one: RUN_FINISHED', async (t) => {
  const redis = await startRedis(t);
  const hosts = await startCluster(t, redis, 1, { plugins: [definePlugin({ name: 'quick', handler: () => 1 })] });
  const missing = await hosts[0]!.host.cancel('0000000000000zzz').catch((e: unknown) => e);
  t.ok(isHostError(missing) && missing.code === 'RUN_NOT_FOUND');
  const { runId } = await hosts[0]!.host.trigger('quick');
  await finalOn(hosts[0]!.host, runId);
  const done = await hosts[0]!.host.cancel(runId).catch((e: unknown) => e);
  t.ok(isHostError(done) && done.code === 'RUN_FINISHED');
});

/** A run taken by a host that then dies (no lock renewal, no end written): what a kill -9 leaves. */
async function takenByDeadHost(redis: Awaited<ReturnType<typeof startRedis>>, prefix: string, job: string): Promise<void> {
  const dead = new Worker(job, null, { connection: redis.client(), prefix, lockDuration: 1000, name: 'dead-host' });
  if (!(await dead.getNextJob('dead-token'))) throw new Error('the dead host found no run to take');
  await dead.close(true);
}

t.test('a run whose host died: the cancel waits for its lock to lapse, removes it from waiting and answers canceled; it never runs', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  let ran = 0;
  const [h0] = await startCluster(t, redis, 1, { prefix, plugins: [definePlugin({ name: 'orphan', handler: () => void ran++ })] });
  h0!.host.pause();
  const { runId } = await h0!.host.trigger('orphan');
  await takenByDeadHost(redis, prefix, 'orphan');
  t.match(await h0!.host.run(runId), { status: 'running' });
  const canceled = await h0!.host.cancel(runId);
  t.match(canceled, { id: runId, status: 'canceled', error: { code: 'CANCELED' } });
  t.match(await h0!.host.run(runId), { status: 'canceled' }, 'read back: canceled');
  h0!.host.resume();
  const probe = await h0!.host.trigger('orphan');
  await finalOn(h0!.host, probe.runId);
  t.equal(ran, 1, 'only the later run ran a handler');
});

t.test(
  'a run whose host died and no host can take over: the cancel is recorded but answers CANCEL_PENDING, never canceled: true for a running run',
  async (t) => {
    const redis = await startRedis(t);
    const prefix = freshPrefix();
    let ran = 0;
    const plugins = [definePlugin({ name: 'stranded', handler: () => void ran++ })];
    const [h0] = await startCluster(t, redis, 1, { prefix, plugins });
    h0!.host.pause();
    const { runId } = await h0!.host.trigger('stranded');
    await takenByDeadHost(redis, prefix, 'stranded');
    await h0!.host.stop({ graceMs: 0 });
    // h1 has no plugin for the job: nothing here can take the run over.
    const [h1] = await startCluster(t, redis, 1, { prefix, first: 1 });
    const t0 = Date.now();
    const pending = await h1!.host.cancel(runId).catch((e: unknown) => e);
    const took = Date.now() - t0;
    t.ok(isHostError(pending) && pending.code === 'CANCEL_PENDING', `CANCEL_PENDING (${String(pending)})`);
    t.ok(took >= 5000 && took < 20_000, `after the 5 s bound (${took} ms), and not much more`);
    t.match(await h1!.host.run(runId), { status: 'running' }, 'shown as it is');
    // A host with the job comes: it takes the run over and ends it canceled without running it.
    const [h2] = await startCluster(t, redis, 1, { prefix, plugins, first: 2 });
    const ended = await finalOn(h2!.host, runId);
    t.match(ended, { status: 'canceled', error: { code: 'CANCELED' } });
    t.equal(ran, 0, 'the handler never ran');
  },
);
