import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { ConfigInput } from '../../../core/contract/config.js';
import { eventHost } from '../../../core/contract/events.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { Notification } from '../../../core/contract/notification.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { type ClusterHost, finalOn, freshPrefix, startCluster } from '../../cluster.js';
import { captureLogger, gate, type Tap, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';
import { startRedis } from '../../redis.js';
import { startTcpProxy } from '../../tcp-proxy.js';

/**
 * The alert rules in cluster mode (SPEC §12), with real hosts on one redis-server and a webhook
 * receiver: the failure streak is the cluster's (folded in the write that ends each run, on
 * whichever host ends it), so `after: N` and `recovered` count runs of every host as one streak,
 * and a `missed` fire is told once for the cluster.
 */

/** Only host `i` takes runs: the others are paused (their starts held). */
function onlyOn(hosts: ClusterHost[], i: number): void {
  for (const [j, h] of hosts.entries()) {
    if (j === i) h.host.resume();
    else h.host.pause();
  }
}

interface Body {
  status: string;
  rule: string;
  runId: string | null;
  message: string;
}

t.test('after: 2 and recovered across three hosts: one streak, one message each, one recovered', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const hosts = await startCluster(t, redis, 3, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'flaky',
        isolation: 'inline',
        notify: { on: ['failed', 'recovered'], after: 2, to: ['hook'] },
        handler: (ctx) => {
          if ((ctx.params as { ok?: boolean } | undefined)?.ok) return 'fine';
          throw new Error('boom');
        },
      }),
    ],
  });
  const bodies = (): Body[] => hook.received.map((r) => r.json as Body);
  const listed = async (status: string): Promise<Notification[]> =>
    (await hosts[0]!.host.notifications({ limit: 1000, job: 'flaky' })).items.filter((n) => n.status === status);
  /** Runs `flaky` on host `i` (triggered from another host) and waits for its end. */
  const runOn = async (i: number, ok: boolean): Promise<void> => {
    onlyOn(hosts, i);
    const { runId } = await hosts[(i + 1) % 3]!.host.trigger('flaky', { params: { ok } });
    const run = await finalOn(hosts[i]!.host, runId);
    t.equal(run.status, ok ? 'succeeded' : 'failed');
    t.equal(run.host, `h${i}`, `run on h${i}`);
  };
  const streakEverywhere = (n: number, what: string): Promise<void> => until(() => hosts.every((h) => h.host.job('flaky')?.alert.failStreak === n), 5000, what);

  await runOn(0, false);
  await streakEverywhere(1, 'every host sees a streak of 1');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(hook.received.length, 0, 'the first failure is not told');
  t.equal((await listed('failed')).length, 0, 'nor recorded');

  await runOn(1, false);
  await hook.count(1);
  t.match(bodies()[0], { status: 'failed', rule: 'failed' }, 'the second failure, on another host, is told');
  await streakEverywhere(2, 'every host sees a streak of 2');
  for (const h of hosts) t.match(h.host.job('flaky')!.alert, { failStreak: 2, open: true });

  await runOn(2, false);
  await hook.count(2);
  t.equal((await listed('failed')).length, 2, 'each failure from the second on: once for the cluster');

  await runOn(0, true);
  await hook.count(3);
  await runOn(1, true);
  await new Promise((r) => setTimeout(r, 800));
  const recovered = bodies().filter((b) => b.status === 'recovered');
  t.equal(recovered.length, 1, 'one recovered for the recovery');
  t.equal(new Set(hook.received.filter((r) => (r.json as Body).status === 'recovered').map((r) => r.headers['webhook-id'])).size, 1);
  t.equal((await listed('recovered')).length, 1, 'one recovered notification recorded');
  t.equal(hook.received.length, 3, 'two failures and one recovery told, nothing else');
  const ids = hook.received.map((r) => r.headers['webhook-id']);
  t.equal(new Set(ids).size, ids.length, 'each message once');
  await streakEverywhere(0, 'every host sees the streak ended');
  for (const h of hosts) t.match(h.host.job('flaky')!.alert, { failStreak: 0, open: false });
  // The second success ended an empty streak: `lastRecoveredStreak` is the one the last success ended.
  t.equal(hosts[2]!.host.job('flaky')!.alert.lastRecoveredStreak, 0);
});

t.test('the host that ends a run reads the streak with it counted (no wait for its mirror)', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const hosts = await startCluster(t, redis, 2, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'breaks',
        isolation: 'inline',
        notify: { on: ['failed'], after: 3, to: ['hook'] },
        handler: () => {
          throw new Error('boom');
        },
      }),
    ],
  });
  const streaks: number[] = [];
  for (const h of hosts) {
    // Its own ends only (a run another host ended is relayed here too, ahead of this mirror's refresh).
    h.host.on('run.failed', (e) => {
      if (eventHost(e) === undefined) streaks.push(h.host.job('breaks')!.alert.failStreak);
    });
  }
  // Back to back, alternating hosts: faster than the mirrors' half-second refresh.
  for (let i = 0; i < 6; i++) {
    onlyOn(hosts, i % 2);
    const { runId } = await hosts[0]!.host.trigger('breaks');
    await finalOn(hosts[i % 2]!.host, runId);
  }
  // finalOn reads Redis, where a run's end lands just before its host emits run.failed: wait for the sixth event.
  await until(() => streaks.length >= 6, 5000, 'the run.failed of each run on its own host');
  t.same(streaks, [1, 2, 3, 4, 5, 6], 'the host ending each run sees the cluster streak, this run counted');
  await hook.count(4);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(hook.received.length, 4, 'failures 3 to 6 told, once each');
});

t.test('missed: a fire refused by overlap on a held run is told once for the cluster', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const hold = gate();
  let started = 0;
  const hosts = await startCluster(t, redis, 3, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'ticks',
        isolation: 'inline',
        schedule: '*/2 * * * * *',
        overlap: 'skip',
        notify: { on: ['missed'], missedAfter: '1s', to: ['hook'] },
        handler: async () => {
          started++;
          await hold.promise;
        },
      }),
    ],
  });
  await until(() => started === 1, 10_000, 'the first fire runs');
  // Held: the next fires are refused by overlap, each missed.
  await until(() => hook.received.length >= 2, 15_000, 'two missed fires told');
  hold.open();
  await new Promise((r) => setTimeout(r, 1500));
  const bodies = hook.received.map((r) => r.json as Body & { message: string; title: string });
  t.ok(
    bodies.every((b) => b.status === 'missed' || b.rule === 'missed'),
    'only missed',
  );
  const missed = (await hosts[0]!.host.notifications({ limit: 1000, job: 'ticks' })).items.filter((n) => n.rule === 'missed');
  t.equal(missed.length, hook.received.length, 'each missed notification delivered once');
  const messages = missed.map((n) => n.message);
  t.equal(new Set(messages).size, messages.length, 'one notification per fire, not one per host');
  await until(() => hosts.every((h) => h.host.job('ticks')?.alert.missedThrough != null), 5000, 'every host shows missedThrough');
  const through = hosts.map((h) => h.host.job('ticks')!.alert.missedThrough);
  t.ok(
    through.every((v) => typeof v === 'string'),
    `missedThrough on every host: ${JSON.stringify(through)}`,
  );
});

t.test('missed: a fire whose run starts on another host is not missed', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const ticks = (schedule: boolean) =>
    definePlugin({
      name: 'ticks',
      isolation: 'inline',
      ...(schedule && { schedule: '*/2 * * * * *' }),
      notify: schedule ? { on: ['missed'], missedAfter: '1s', to: ['hook'] } : { on: ['failed'], to: ['hook'] },
      handler: () => 'ok',
    });
  // h0 alone fires the schedule (so it watches every fire), and takes no runs: h1 starts them all.
  const hosts = await startCluster(t, redis, 2, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    pluginsOf: (i) => [ticks(i === 0)],
  });
  onlyOn(hosts, 1);
  const ran = async (): Promise<Notification['runId'][]> =>
    (await hosts[1]!.host.runs({ job: 'ticks', limit: 100 })).items.filter((r) => r.status === 'succeeded' && r.host === 'h1').map((r) => r.id);
  let done: string[] = [];
  await until(async () => (done = await ran()).length >= 3, 20_000, 'three fires run on h1');
  // The first fire's watch ran out (1s) two fires ago; a told one would have reached the hook by now.
  await until(async () => (await ran()).length >= 4, 10_000, 'a fourth');
  t.same(
    hook.received.map((r) => (r.json as Body).rule),
    [],
    `no fire missed: each started on h1 (${done.length} runs) within its second`,
  );
});

t.test('missed: a fire whose run started in time on another host is not told when Redis is out of reach at its deadline', async (t) => {
  const redis = await startRedis(t);
  const hook = await httpReceiver(t);
  const watcher = captureLogger();
  const ticks = (schedule: boolean) =>
    definePlugin({
      name: 'ticks',
      isolation: 'inline',
      ...(schedule && { schedule: '*/4 * * * * *' }),
      notify: schedule ? { on: ['missed'], missedAfter: '1s', to: ['hook'] } : { on: ['failed'], to: ['hook'] },
      handler: () => 'ok',
    });
  // h0 alone fires and watches; h1 runs every fire.
  const hosts = await startCluster(t, redis, 2, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    pluginsOf: (i) => [ticks(i === 0)],
    loggerOf: (i) => (i === 0 ? watcher.logger : silentLogger()),
  });
  onlyOn(hosts, 1);
  const succeeded = () => hosts[1]!.of('run.succeeded').filter((e) => e.data.job === 'ticks').length;
  await until(() => succeeded() >= 1, 15_000, 'a fire run on h1');
  // Redis goes away before the fire's deadline (1 s after it) and stays away past it.
  await redis.stop();
  const looked = (): boolean => watcher.lines.some((l) => l['msg'] === 'could not read the run of a watched schedule fire; looking again');
  await until(looked, 10_000, "h0 could not read the run at the fire's deadline");
  await redis.restart();
  // Two more fires run: by then h0 has looked at the first fire's run again (every second).
  const before = succeeded();
  await until(() => succeeded() >= before + 2, 20_000, 'two more fires run on h1');
  t.same(
    hook.received.map((r) => (r.json as Body).rule),
    [],
    'no fire told missed: the run started in time, as h0 read once Redis was back',
  );
});

t.test('slow: told once for the cluster when the retry runs on another host', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const first = gate();
  const hosts = await startCluster(t, redis, 2, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'sluggish',
        isolation: 'inline',
        retry: { attempts: 2, delay: '1ms', backoff: 'fixed', jitter: 0 },
        notify: { on: ['slow'], slowerThan: '500ms', to: ['hook'] },
        handler: async (ctx) => {
          if (ctx.attempt === 1) {
            await first.promise;
            throw new Error('first attempt fails');
          }
          // The retry is slow work too: long enough for its host to tell it slow, were it to.
          await new Promise((r) => setTimeout(r, 600));
          return 'ok';
        },
      }),
    ],
  });
  onlyOn(hosts, 0);
  const { runId } = await hosts[0]!.host.trigger('sluggish');
  await hook.count(1);
  // Told by h0 during attempt 1; attempt 2 starts on h1, its slowerThan long past since the first start.
  onlyOn(hosts, 1);
  first.open();
  const run = await finalOn(hosts[1]!.host, runId, 20_000);
  t.same(
    run.attempts.map((a) => a.n),
    [1, 2],
  );
  await until(async () => (await hosts[1]!.host.runs({ job: 'sluggish' })).items[0]?.host === 'h1', 5000, 'h1 ran the retry');
  const slow = (await hosts[0]!.host.notifications({ limit: 100, job: 'sluggish' })).items.filter((n) => n.rule === 'slow');
  t.equal(slow.length, 1, 'slow once per run cluster-wide');
});

/** Two hosts with a job that always fails, notifying a webhook receiver under a storm-control window of `throttleMs`. */
async function failingPair(t: Tap, throttleMs: number, extra: ConfigInput = {}) {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const hosts = await startCluster(t, redis, 2, {
    config: { ...extra, notifications: { throttle: throttleMs, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'breaks',
        isolation: 'inline',
        notify: { on: ['failed'], to: ['hook'] },
        handler: () => {
          throw new Error('boom');
        },
      }),
    ],
  });
  return { hosts, hook };
}

t.test('storm control: a window whose opener stops still gets the digest of what other hosts held back in it', async (t) => {
  // A window long enough for both hosts' runs to fall in it on a loaded machine.
  const { hosts, hook } = await failingPair(t, 5000);
  onlyOn(hosts, 0);
  for (let i = 0; i < 3; i++) await finalOn(hosts[0]!.host, (await hosts[0]!.host.trigger('breaks')).runId);
  // h0 opened the window (one message, two held); its stop sends the digest of those two.
  await hosts[0]!.host.stop({ graceMs: 0 });
  onlyOn(hosts.slice(1), 0);
  for (let i = 0; i < 5; i++) await finalOn(hosts[1]!.host, (await hosts[1]!.host.trigger('breaks')).runId);
  const heldTold = (): number => hook.received.reduce((a, r) => a + ((r.json as { held?: { count: number } }).held?.count ?? 0), 0);
  // The five h1 held back in the same window: told in a digest at the window's end, by h1.
  await until(() => heldTold() >= 7, 10_000, 'every held-back failure counted in a digest');
  t.equal(heldTold(), 7, '2 from h0 and 5 from h1, each once');
  t.equal(hook.received.filter((r) => (r.json as Body).rule === 'failed').length, 1, 'one message in the window');
});

t.test("storm control: a host that held a message back does not take the next window's counts at the end of the last one", async (t) => {
  // Long enough for the next failure to land in the window on a loaded machine.
  const THROTTLE_MS = 4000;
  const { hosts, hook } = await failingPair(t, THROTTLE_MS);
  const failOn = async (i: number): Promise<void> => {
    onlyOn(hosts, i);
    await finalOn(hosts[i]!.host, (await hosts[i]!.host.trigger('breaks')).runId);
  };
  // h0 opens the window; h1 holds one back in it (and looks for its digest a little after its end).
  await failOn(0);
  await failOn(1);
  await hook.count(2, 10_000);
  const digestAt = Date.now();
  t.match(hook.received[1]!.json, { rule: 'digest', held: { count: 1 } }, "h0's digest at the window's end, which opens the next");
  // At once, in the next window: held back there, told by that window's digest, not by h1 taking it early.
  await failOn(1);
  await hook.count(3, 10_000);
  t.match(hook.received[2]!.json, { rule: 'digest', held: { count: 1 } });
  // digestAt is when the test saw the first digest, after the window opened: the next one comes about a
  // window later, and one h1 took early would come at once.
  t.ok(Date.now() - digestAt >= THROTTLE_MS / 2, `one message a window: the next digest ${Date.now() - digestAt} ms after the last`);
});

t.test("host alerts: runs that a job's concurrency or its rateLimit holds back are no stall", async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const hold = gate();
  const hosts = await startCluster(t, redis, 2, {
    config: {
      notifications: { stallAfter: '1s', host: { to: ['hook'] }, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } },
    } as ConfigInput,
    plugins: [
      definePlugin({ name: 'one-at-a-time', isolation: 'inline', concurrency: 1, handler: () => hold.promise }),
      definePlugin({ name: 'paced', isolation: 'inline', rateLimit: { max: 1, per: '2500ms' }, handler: () => 'ok' }),
    ],
  });
  for (let i = 0; i < 3; i++) await hosts[0]!.host.trigger('one-at-a-time');
  for (let i = 0; i < 3; i++) await hosts[0]!.host.trigger('paced');
  // The second paced run starts once the first window of 2.5 s closes: well past stallAfter and a host alert's look each second.
  await until(async () => (await hosts[0]!.host.runs({ job: 'paced' })).items.filter((r) => r.status === 'succeeded').length >= 2, 15_000, 'two paced runs');
  hold.open();
  t.same(
    hook.received.map((r) => (r.json as { message: string }).message),
    [],
    'no dispatch-stalled alert: every waiting run was held by its own job, not by a stalled dispatcher',
  );
});

t.test('storm control: a host alone in the cluster that stops sends the digest of its window before it ends, within its deadline', async (t) => {
  /** h0 alone (h1 left first: no one else would take the digest's delivery), one message sent and two held back. */
  const alone = async (): Promise<Awaited<ReturnType<typeof failingPair>>> => {
    // grace 0 + margin 2 s: the stop's deadline; half of what is left of it bounds the last attempts.
    const pair = await failingPair(t, 30_000, { shutdown: { margin: '2s' } });
    await pair.hosts[1]!.host.stop({ graceMs: 0 });
    for (let i = 0; i < 3; i++) await finalOn(pair.hosts[0]!.host, (await pair.hosts[0]!.host.trigger('breaks')).runId);
    await pair.hook.count(1);
    return pair;
  };
  const { hosts, hook } = await alone();
  await hosts[0]!.host.stop({ graceMs: 0 });
  t.equal(hook.received.length, 2, 'the digest reached the receiver before stop() resolved');
  t.match(hook.received[1]?.json, { rule: 'digest', held: { count: 2, statuses: { failed: 2 } } });
  t.equal(hosts[0]!.of('notification.delivered').length, 2, 'recorded delivered by the stopping host');

  // A receiver that hangs on the digest: the stop ends within its deadline all the same (the
  // attempt is cut at the bound and its job handed back), not after the close's own wait for it.
  const hung = await alone();
  hung.hook.script('hang');
  const began = Date.now();
  await hung.hosts[0]!.host.stop({ graceMs: 0 });
  const took = Date.now() - began;
  // Its deadline is 2 s (about 1 s taken); the bound here only tells it from a stop that waited on
  // the hanging receiver (its 5 min timeout), and leaves a loaded machine its stalls.
  t.ok(took < 10_000, `the stop ended at its deadline, not the receiver's timeout (${took} ms), with no STOP_INCOMPLETE`);
  // At least 2: the attempt the bound cut short goes back to the queue, and the closing worker may take it once more.
  t.ok(hung.hook.received.length >= 2, 'the digest was attempted');
  t.match(hung.hook.received[1]?.json, { rule: 'digest' });
});

t.test("missed: a fire's watch kept in Redis goes once its run starts", async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  let runs = 0;
  const hosts = await startCluster(t, redis, 1, {
    prefix,
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: 'http://127.0.0.1:9/in' } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'ticks',
        isolation: 'inline',
        schedule: '* * * * * *',
        notify: { on: ['missed'], missedAfter: '1h', to: ['hook'] },
        handler: () => ++runs,
      }),
    ],
  });
  await until(async () => (await hosts[0]!.host.runs({ job: 'ticks', status: 'succeeded' })).items.length >= 3, 15_000, 'three fires ran');
  // Each fire's watch (deadline an hour on) was kept, then dropped as its run started: at most the
  // newest fire's is left, or the two newest when a run started late (kept ones would be 3 or more).
  t.ok((await redis.client().zcard(`${prefix}:__jh:missed:ticks`)) <= 2);
});

t.test('missed: the fires a stalled host passed are told once their missedAfter had run out when its timer came', async (t) => {
  // Every fire outside the stall must start within missedAfter on the real clock: 2 s, and a Redis
  // that does not fsync each write, so that a loaded machine's own stalls tell no fire missed.
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const hosts = await startCluster(t, redis, 1, {
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'ticks',
        isolation: 'inline',
        schedule: '* * * * * *',
        notify: { on: ['missed'], missedAfter: '2s', to: ['hook'] },
        handler: () => 'ok',
      }),
      // Keeps the event loop busy for 5 s: no timer fires meanwhile (what the stall is, not a wait of the test's).
      definePlugin({
        name: 'block',
        isolation: 'inline',
        handler: () => {
          const end = Date.now() + 5000;
          while (Date.now() < end);
        },
      }),
    ],
  });
  const h = hosts[0]!.host;
  await until(async () => (await h.runs({ job: 'ticks', status: 'succeeded' })).items.length >= 1, 10_000, 'a fire ran');
  const stalledAt = Date.now();
  await finalOn(h, (await h.trigger('block')).runId);
  const stalledTo = Date.now();
  // The fires of the stall whose 2 s ran out before it ended (two or three of them, by where in its second it began).
  await until(() => hook.received.length >= 2, 10_000, 'the fires the stall passed told');
  await until(
    async () => (await h.runs({ job: 'ticks', status: 'succeeded' })).items.some((r) => Date.parse(r.createdAt) > stalledTo + 2500),
    10_000,
    'fires after the stall ran',
  );
  const missed = (await h.notifications({ limit: 100, job: 'ticks' })).items.filter((n) => n.rule === 'missed');
  const fires = missed.map((n) => n.message.match(/fire at (\S+): the host was stalled$/)?.[1]);
  t.ok(missed.length >= 2, `${missed.length} missed`);
  t.ok(
    fires.every((f) => f !== undefined && Date.parse(f) > stalledAt && Date.parse(f) < stalledTo),
    `each a fire of the stall, told as one: ${JSON.stringify(missed.map((n) => n.message))}`,
  );
  t.equal(new Set(fires).size, fires.length, 'each once');
  t.equal(hook.received.length, missed.length, 'nothing else missed');
});

t.test('storm control: what a killed host alone held back is told by the message that opens the next window', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const hook = await httpReceiver(t);
  const prefix = freshPrefix();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./storm-child.ts', import.meta.url)), redis.url, prefix, `${hook.url}/in`, '3000', '4'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = once(child, 'exit');
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await until(() => out.includes('ended'), 30_000, 'four failed runs on the doomed host');
  const held = `${prefix}:__jh:held:stormy:hook`;
  await until(async () => (await redis.client().hget(held, 'failed')) === '3', 5000, 'three failures held back');
  child.kill('SIGKILL');
  await exited;
  await until(() => hook.received.length >= 1, 5000, 'the first failure told');
  // Its window ends with no host left to send its digest.
  await until(async () => (await redis.client().pttl(`${prefix}:__jh:storm:stormy:hook`)) === -2, 10_000, 'the window ended');
  const [h] = await startCluster(t, redis, 1, {
    prefix,
    config: { notifications: { throttle: 3000, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [{ name: 'stormy', isolation: 'inline', notify: { on: ['failed'], to: ['hook'] }, handler: () => Promise.reject(new Error('boom')) }],
  });
  await finalOn(h!.host, (await h!.host.trigger('stormy')).runId);
  await until(() => hook.received.length >= 2, 10_000, 'the next failure told');
  t.equal(hook.received.length, 2, 'no digest of the killed window besides');
  t.match((hook.received[1]!.json as Body).message, /Storm control held back 3 notifications before it: 3 failed\.$/, 'the next message tells them');
});

t.test('host alerts: that Redis is out of reach reaches notifications.host.to while it is, not once it is back', async (t) => {
  const redis = await startRedis(t);
  const hook = await httpReceiver(t);
  const [h] = await startCluster(t, redis, 1, {
    config: { notifications: { host: { to: ['hook'] }, destinations: { hook: { kind: 'webhook', url: hook.url } } } },
  });
  await redis.stop();
  // Redis records and queues every other notification: this one cannot wait for it.
  await hook.count(1, 15_000);
  t.equal(h!.host.storeHealth().backend.available, false, 'received while Redis is still out of reach');
  t.match(hook.received[0]!.json, { rule: 'host', status: 'failed', condition: 'backend-unavailable', host: 'h0' });
  await redis.restart();
  await hook.count(2, 15_000);
  t.match(hook.received[1]!.json, { rule: 'host', status: 'recovered', condition: 'backend-unavailable' });
  t.equal(hook.received.length, 2, 'each told once');
});

t.test("host alerts: the end of 'Redis is out of reach' waits for its start, which a receiver down kept retrying", async (t) => {
  const redis = await startRedis(t);
  const hook = await httpReceiver(t);
  hook.fallback = { status: 503, body: 'down' };
  const up = await httpReceiver(t);
  const [h] = await startCluster(t, redis, 1, {
    config: {
      notifications: {
        host: { to: ['hook', 'up'] },
        destinations: { hook: { kind: 'webhook', url: hook.url }, up: { kind: 'webhook', url: up.url } },
        retry: { attempts: 20, delay: '500ms', backoff: 'fixed', jitter: 0 },
      },
    },
  });
  await redis.stop();
  await hook.count(1, 15_000);
  await redis.restart();
  await until(() => h!.host.storeHealth().backend.available, 15_000, 'Redis back');
  // Redis is back, the start still fails: two more of its attempts, and no end meanwhile.
  const seen = hook.received.length;
  await hook.count(seen + 2, 15_000);
  const statuses = () => hook.received.map((r) => (r.json as { status: string }).status);
  t.notOk(statuses().includes('recovered'), 'no resolve before its trigger went through');
  // A destination that took the start has its end meanwhile: it does not wait for the one still failing.
  await up.count(2, 15_000);
  t.ok(hook.received.length < 20, `while the failing one's start still retries (${hook.received.length} of its 20 attempts made)`);
  t.same(
    up.received.map((r) => (r.json as { status: string }).status),
    ['failed', 'recovered'],
  );
  hook.fallback = { status: 200, body: 'ok' };
  await until(() => statuses().includes('recovered'), 15_000, 'the end told');
  const firstEnd = statuses().indexOf('recovered');
  t.ok(firstEnd > seen + 2, 'after the start was taken');
  t.same(
    statuses().slice(0, firstEnd),
    statuses()
      .slice(0, firstEnd)
      .map(() => 'failed'),
    'every attempt of the start came first',
  );
});

/**
 * The notification of a run's end is a write after the end's own: a host cut off (as a kill -9
 * would leave it) in between leaves the end marked untold, and another host tells it. The proxy
 * cuts h0 off as it sends the notification's record (or its event), before any of it reaches Redis.
 */
async function cutAtNotification(t: Test, notify: Record<string, unknown>, n = 2, without: readonly number[] = []) {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  // The record's JSON (a delivery's read of a record names its key, not its title).
  const proxy = await startTcpProxy(t, redis.port, { cutBefore: '"title":"Flaky' });
  const hook = await httpReceiver(t);
  const prefix = freshPrefix();
  const options = {
    prefix,
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'flaky',
        isolation: 'inline',
        notify: { ...notify, to: ['hook'] },
        handler: (ctx) => {
          if ((ctx.params as { ok?: boolean } | undefined)?.ok) return 'fine';
          throw new Error('boom');
        },
      }),
    ],
  };
  const logs = captureLogger();
  const hosts = await startCluster(t, redis, n, {
    ...options,
    urlOf: (i) => (i === 0 ? proxy.url : redis.url),
    // Hosts in `without` do not have the plugin.
    pluginsOf: (i) => (without.includes(i) ? [] : options.plugins),
    loggerOf: (i) => (i === 0 ? logs.logger : silentLogger()),
  });
  const admin = redis.client();
  const marks = async () => [await admin.zcard(`${prefix}:__jh:untold`), await admin.hlen(`${prefix}:__jh:untold:ends`)];
  /** Runs `flaky` on host `i` and waits for its end there (its event: h0 may be cut off as it ends). */
  const runOn = async (i: number, ok: boolean) => {
    onlyOn(hosts, i);
    const { runId } = await hosts[i]!.host.trigger('flaky', { params: { ok } });
    const ended = () => hosts[i]!.events.find((e) => (e.type === 'run.failed' || e.type === 'run.succeeded') && e.data.runId === runId);
    await until(() => ended() !== undefined, 15_000, `run ${runId} to end on h${i}`);
    return { id: runId, status: ended()!.type.slice('run.'.length) };
  };
  /** Another host on the same Redis (connected directly), with the same plugin; `first`: its number. */
  const another = async (first: number) => (await startCluster(t, redis, 1, { ...options, first }))[0]!;
  return { proxy, hook, hosts, marks, runOn, another, h0Logs: logs.lines, bodies: () => hook.received.map((r) => r.json as Body) };
}

t.test('a host cut off between a run end and its notification: another host tells the end, once', async (t) => {
  const { proxy, hook, hosts, marks, runOn, bodies, h0Logs } = await cutAtNotification(t, { on: ['failed'] });
  const run = await runOn(0, false);
  t.equal(run.status, 'failed');
  await until(() => proxy.cutOff, 10_000, 'h0 cut off as it records the notification');
  t.same(await marks(), [1, 1], 'the end is marked untold');
  // h1 takes the mark once h0 drops out of the live hosts (its heartbeat expires): about 10 s.
  await hook.count(1, 30_000);
  t.match(bodies()[0], { status: 'failed', rule: 'failed', runId: run.id });
  const listed = (await hosts[1]!.host.notifications({ limit: 100, job: 'flaky' })).items;
  t.same(
    listed.map((n) => [n.status, n.runId]),
    [['failed', run.id]],
    'recorded once',
  );
  await until(async () => (await marks()).every((n) => n === 0), 10_000, 'the mark dropped once told');
  // h0 back: its record, sent again as it reconnects, finds the mark no longer its own and records nothing.
  await proxy.restore();
  await until(() => h0Logs.some((l) => l['msg'] === 'not recorded: another host took the end of the run over and tells it'), 20_000, "h0's record fenced");
  t.equal((await hosts[1]!.host.notifications({ limit: 100, job: 'flaky' })).items.length, 1, 'still recorded once');
  // Told in the normal way on h1, whose own end leaves no mark behind.
  const second = await runOn(1, false);
  await hook.count(2, 15_000);
  t.equal(bodies()[1]!.runId, second.id);
  await until(async () => (await marks()).every((n) => n === 0), 10_000, 'no mark left by an end its host told');
  t.equal(hook.received.length, 2, 'each end told once');
});

t.test('a recovery whose host was cut off before telling it: told by another host with the streak its end ended', async (t) => {
  const { proxy, hook, marks, runOn, bodies } = await cutAtNotification(t, { on: ['failed', 'recovered'], after: 2 });
  await runOn(1, false);
  await runOn(1, false);
  await hook.count(1, 15_000);
  t.match(bodies()[0], { status: 'failed' });
  t.same(await marks(), [0, 0], 'a told end leaves no mark');
  const ok = await runOn(0, true);
  t.equal(ok.status, 'succeeded');
  await until(() => proxy.cutOff, 10_000, 'h0 cut off as it records the recovery');
  await hook.count(2, 30_000);
  t.match(bodies()[1], { status: 'recovered', runId: ok.id });
  t.match(bodies()[1]!.message, /succeeded after 2 failed runs/);
  await until(async () => (await marks()).every((n) => n === 0), 10_000, 'the mark dropped once told');
  t.equal(hook.received.length, 2);
});

t.test('a host killed between a run end and its notification, started again under the same id: it tells the end its last run left untold', async (t) => {
  // h1 does not have the plugin: it never takes the mark (which would leave it to h1 for 30 s).
  const { proxy, hook, marks, runOn, another, bodies } = await cutAtNotification(t, { on: ['failed'] }, 2, [1]);
  const run = await runOn(0, false);
  await until(() => proxy.cutOff, 10_000, 'h0 cut off as it records the notification');
  t.same(await marks(), [1, 1], 'the end is marked untold');
  // The same id at once (the old one's heartbeat has not expired yet): a host restarted is another
  // host, so its first looks take the mark, rather than after the 30 s a live host's mark is left to it.
  const restartedAt = Date.now();
  await another(0);
  await hook.count(1, 25_000);
  t.ok(Date.now() - restartedAt < 25_000, `told ${Date.now() - restartedAt} ms after the restart`);
  t.match(bodies()[0], { status: 'failed', runId: run.id });
  await until(async () => (await marks()).every((n) => n === 0), 10_000, 'the mark dropped once told');
});
