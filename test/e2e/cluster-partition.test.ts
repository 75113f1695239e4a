import t from 'tap';
import { isHostError } from '../../core/contract/errors.js';
import type { AnyHostEvent } from '../../core/contract/events.js';
import { silentLogger } from '../../core/contract/logger.js';
import { definePlugin } from '../../core/contract/plugin.js';
import { createHost, type Host } from '../../core/engine/host.js';
import { createServer } from '../../core/server/server.js';
import { finalOn, freshPrefix, startCluster } from '../cluster.js';
import { captureLogger, gate, until } from '../helpers.js';
import { startRedis } from '../redis.js';
import { startTcpProxy } from '../tcp-proxy.js';

/**
 * A network partition (SPEC §11): one host reaches Redis through a TCP proxy the test cuts and
 * restores, the other is connected directly. Short locks (`backend.lockDuration`), so a takeover
 * takes about two seconds.
 */

/** A counter's value in a Prometheus text exposition (0 when absent). */
function counter(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function metric(url: string, name: string): Promise<number> {
  return counter(await (await fetch(`${url}/metrics`)).text(), name);
}

t.test(
  'a host cut off from Redis mid-run: another takes the run over and finishes it; once back, its late finish is refused, logged and counted',
  async (t) => {
    const redis = await startRedis(t);
    const proxy = await startTcpProxy(t, redis.port);
    const prefix = freshPrefix();
    const release = gate();
    const h0Started = gate();

    // h0 holds its attempt until released (then reports progress and returns); h1 finishes at once.
    const plugin = (id: string) =>
      definePlugin({
        name: 'long',
        isolation: 'inline',
        retry: { attempts: 3, delay: 10 },
        // A success record (what `once` and `cooldown` read) is written before each success.
        cooldown: '1ms',
        handler: async (ctx) => {
          if (id === 'h0') {
            ctx.progress(0.1, 'h0 started');
            h0Started.open();
            await release.promise;
            ctx.progress(0.9, 'h0 late');
          } else {
            ctx.progress(1, 'h1 done');
          }
          return { by: id };
        },
      });

    const start = async (id: string, url: string, logger = silentLogger()): Promise<Host> => {
      const host = createHost({
        config: { backend: { kind: 'redis', url, prefix, lockDuration: 1000, stalledInterval: 500 }, cluster: { id } },
        logger,
        random: () => 0.5,
        plugins: [plugin(id)],
      });
      t.teardown(() => host.stop({ graceMs: 0 }));
      await host.start();
      return host;
    };
    const log = captureLogger();
    const h0 = await start('h0', proxy.url, log.logger);
    const h1 = await start('h1', redis.url);
    const server = createServer(h0, { host: '127.0.0.1', port: 0 });
    const { url } = await server.listen();
    t.teardown(() => server.close());
    const h0Own: AnyHostEvent[] = [];
    h0.on('*', (e) => void (e.data.host === undefined && h0Own.push(e)));

    // The run starts on h0 (h1 takes nothing until then).
    h1.pause();
    const { runId } = await h0.trigger('long');
    await h0Started.promise;
    h1.resume();
    t.equal(await metric(url, 'jobhost_late_finishes_total'), 0, 'no late finish yet');

    await proxy.cut();
    // Cut off: h0 refuses new work; the run it holds is taken over by h1 once the lock lapses.
    const refused = await h0.trigger('long').catch((err: unknown) => err);
    t.ok(isHostError(refused) && refused.code === 'BACKEND_UNAVAILABLE', 'a trigger on the cut-off host answers BACKEND_UNAVAILABLE');
    const owned = await finalOn(h1, runId, 20_000);
    t.match(
      owned,
      { status: 'succeeded', host: 'h1', result: { by: 'h1' }, progress: { fraction: 1, text: 'h1 done' } },
      'h1 took the run over and finished it',
    );
    t.same(
      owned.attempts.map((a) => a.error?.code ?? null),
      ['INTERRUPTED', null],
      "h0's attempt is recorded as interrupted, h1's succeeded",
    );
    const state = redis.client();
    const successAt = await state.hget(`${prefix}:__jh:job:long`, 'lastSuccessAt');
    t.ok(successAt, "h1's success is on record");

    // h0's handler ends while it is still cut off: its progress, success record and end wait in its connection.
    release.open();
    await proxy.restore();
    await until(async () => (await metric(url, 'jobhost_late_finishes_total')) === 1, 20_000, 'the late finish to be counted');
    await until(() => log.lines.some((l) => l['code'] === 'LATE_FINISH'), 5000, 'the late finish to be logged');
    const line = log.lines.find((l) => l['code'] === 'LATE_FINISH')!;
    t.match(line, { level: 40, runId, job: 'long', host: 'h0', owner: 'h1', attempt: 1 }, 'logged as a warning naming the run, this host and the new owner');

    // Nothing of h0's late finish landed: the run, its progress and the job's success record are h1's.
    // (h0's connections come back one by one: a read may still answer BACKEND_UNAVAILABLE for a moment.)
    await until(
      () =>
        h0.run(runId).then(
          () => true,
          () => false,
        ),
      10_000,
      "h0's reads back",
    );
    for (const host of [h0, h1]) {
      const run = await host.run(runId);
      t.match(run, { status: 'succeeded', host: 'h1', result: { by: 'h1' }, progress: { fraction: 1, text: 'h1 done' } });
      t.equal(run?.attempts.length, 2, 'no attempt added by the late finish');
    }
    t.equal(await state.hget(`${prefix}:__jh:job:long`, 'lastSuccessAt'), successAt, 'the success record is not overwritten');
    t.notOk(
      h0Own.some((e) => e.type === 'run.succeeded' || e.type === 'run.failed' || e.type === 'run.retrying'),
      'h0 announced no end of the run',
    );
    t.equal(await metric(url, 'jobhost_late_finishes_total'), 1, 'counted once');

    // Back on the link, h0 takes runs again.
    await until(() => h0.storeHealth().backend.available, 10_000, 'h0 to reach Redis again');
    h1.pause();
    const again = await h0.trigger('long');
    const after = await finalOn(h0, again.runId, 20_000);
    t.match(after, { status: 'succeeded', host: 'h0' }, 'h0 runs again once the link is back');
  },
);

t.test('a host whose end write went through but whose reply was lost with the link: no late finish is logged or counted', async (t) => {
  const redis = await startRedis(t);
  // The end's write carries the handler's result: the proxy passes it to Redis, then cuts before the reply.
  const proxy = await startTcpProxy(t, redis.port, { cutAfter: 'reply-lost-marker' });
  const logs = captureLogger();
  const [h] = await startCluster(t, redis, 1, {
    urlOf: () => proxy.url,
    loggerOf: () => logs.logger,
    plugins: [definePlugin({ name: 'quick', isolation: 'inline', handler: () => 'reply-lost-marker' })],
  });
  const { runId } = await h!.host.trigger('quick');
  await until(() => proxy.cutOff, 10_000, 'cut as the end went out');
  await proxy.restore();
  // BullMQ writes the end again once Redis answers: refused, the run having ended (as this host's).
  const explained = () => logs.lines.some((l) => /^the end of the attempt was written before the link/.test(String(l['msg'])));
  await until(() => explained() || logs.lines.some((l) => l['code'] === 'LATE_FINISH'), 20_000, 'the second write refused');
  t.ok(explained(), 'the refusal explained');
  t.notOk(
    logs.lines.some((l) => l['code'] === 'LATE_FINISH'),
    'no late finish: no other host took the run over',
  );
  t.equal(h!.host.storeHealth().faults?.lateFinishes ?? 0, 0, 'none counted');
  t.match(await finalOn(h!.host, runId), { status: 'succeeded', host: 'h0', result: 'reply-lost-marker' });
});
