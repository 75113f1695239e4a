import { cpSync } from 'node:fs';
import t from 'tap';
import type { ConfigInput } from '../../../core/contract/config.js';
import type { Notification } from '../../../core/contract/notification.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createStallingClock, gate, startServer, type TestServer, tempDir, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';

/** Alert rules and storm control (SPEC §12) on one host, with the host's clock injected and a real receiver. */

async function notified(s: TestServer, count: number, what: string): Promise<Notification[]> {
  let items: Notification[] = [];
  await until(
    async () => {
      items = (await s.host.notifications({ limit: 1000 })).items;
      return items.length >= count;
    },
    10_000,
    what,
  );
  return items.reverse();
}

const notifications = (extra: Record<string, unknown> = {}) =>
  ({ destinations: { hook: { kind: 'webhook', url: 'http://127.0.0.1:1/' } }, ...extra }) as ConfigInput['notifications'];

t.test('after: 3 notifies from the third consecutive failure on; one recovered per recovery; the streak survives a restart', async (t) => {
  let fail = true;
  const plugin = () =>
    definePlugin({
      name: 'flaky',
      isolation: 'inline',
      notify: { on: ['failed', 'recovered'], after: 3, to: ['hook'] },
      handler: () => {
        if (fail) throw new Error('nope');
        return 'fine';
      },
    });
  const config = { notifications: notifications({ throttle: 0 }) };
  const first = await startServer(t, { config, plugins: [plugin()] });
  for (let i = 0; i < 2; i++) await first.host.wait((await first.host.trigger('flaky')).runId);
  t.equal((await first.host.notifications({})).items.length, 0, 'the first two failures are held back');
  await first.host.stop({ graceMs: 0 });

  const s = await startServer(t, { dir: first.dir, clock: first.clock, config, plugins: [plugin()] });
  for (let i = 0; i < 2; i++) await s.host.wait((await s.host.trigger('flaky')).runId);
  let items = await notified(s, 2, 'the 3rd and 4th failures notified');
  t.same(
    items.map((n) => [n.rule, n.status]),
    [
      ['failed', 'failed'],
      ['failed', 'failed'],
    ],
  );
  fail = false;
  const ok = (await s.host.trigger('flaky')).runId;
  await s.host.wait(ok);
  await s.host.wait((await s.host.trigger('flaky')).runId);
  items = await notified(s, 3, 'recovered');
  t.equal(items.length, 3, 'one recovered, not one per success');
  t.match(items[2], {
    rule: 'recovered',
    status: 'recovered',
    runId: ok,
    title: 'Flaky Recovered',
    message: /succeeded after 4 failed runs/,
    priority: 'medium',
  });
  const view = await s.request('GET', '/jobs/flaky');
  t.match(view.json['alert'], { failStreak: 0, open: false });

  // A streak shorter than `after` was never notified: its end is no recovery.
  fail = true;
  await s.host.wait((await s.host.trigger('flaky')).runId);
  t.match((await s.request('GET', '/jobs/flaky')).json['alert'], { failStreak: 1, open: false });
  fail = false;
  await s.host.wait((await s.host.trigger('flaky')).runId);
  t.equal((await s.host.notifications({})).items.length, 3, 'no recovered after an unnotified failure');
});

t.test('after: N holds retrying notifications back too, until the run that would be the N-th failure', async (t) => {
  const s = await startServer(t, {
    config: { notifications: notifications({ throttle: 0 }) },
    plugins: [
      definePlugin({
        name: 'flaky',
        isolation: 'inline',
        retry: { attempts: 2, delay: 0, jitter: 0 },
        notify: { on: ['failed', 'retrying'], after: 2, to: ['hook'] },
        handler: () => {
          throw new Error('nope');
        },
      }),
    ],
  });
  await s.host.wait((await s.host.trigger('flaky')).runId);
  t.equal((await s.host.notifications({})).items.length, 0, 'the first failing run, its retry included, is held back');
  const second = (await s.host.trigger('flaky')).runId;
  await s.host.wait(second);
  const items = await notified(s, 2, 'the second failing run');
  t.same(
    items.map((n) => [n.status, n.runId]),
    [
      ['retrying', second],
      ['failed', second],
    ],
  );
});

t.test('slow: sent once while the run is still running, slowerThan after its start', async (t) => {
  const release = gate();
  const s = await startServer(t, {
    config: { notifications: notifications() },
    plugins: [
      definePlugin({
        name: 'long-haul',
        isolation: 'inline',
        timeout: '2h',
        notify: { on: ['slow'], slowerThan: '10m', to: ['hook'] },
        handler: () => release.promise,
      }),
    ],
  });
  const { runId } = await s.host.trigger('long-haul');
  await until(() => s.of('run.started').length === 1, 5000, 'started');
  await s.clock.advance(10 * 60_000 - 1);
  t.equal((await s.host.notifications({})).items.length, 0, 'not before its time');
  await s.clock.advance(1);
  const [slow] = await notified(s, 1, 'slow');
  t.match(slow, { rule: 'slow', runId, title: 'Long Haul Slow', message: /is still running after 10m \(slower than 10m\)/, priority: 'high' });
  await s.clock.advance(60 * 60_000);
  release.open();
  await s.host.wait(runId);
  t.equal((await s.host.notifications({})).items.length, 1, 'once per run');
});

t.test('slow: a config edit that adds the rule, or lowers slowerThan, reaches the runs already running', async (t) => {
  const release = gate();
  const s = await startServer(t, {
    config: { notifications: notifications() },
    plugins: [
      definePlugin({ name: 'long-haul', isolation: 'inline', timeout: '2h', notify: { on: ['succeeded'], to: ['hook'] }, handler: () => release.promise }),
    ],
  });
  const { runId } = await s.host.trigger('long-haul');
  await until(() => s.of('run.started').length === 1, 5000, 'started');
  await s.clock.advance(3 * 60_000);
  // Added while it runs (the usual moment: a run is hanging now).
  s.host.applyConfig({ notifications: notifications(), jobs: { 'long-haul': { notify: { on: ['slow', 'succeeded'], slowerThan: '1h', to: ['hook'] } } } });
  await s.clock.advance(10 * 60_000);
  t.equal((await s.host.notifications({})).items.length, 0, 'not before its time');
  // Lowered: 5m after its start has passed already, so it is told now.
  s.host.applyConfig({ notifications: notifications(), jobs: { 'long-haul': { notify: { on: ['slow', 'succeeded'], slowerThan: '5m', to: ['hook'] } } } });
  await s.clock.advance(1);
  const [slow] = await notified(s, 1, 'slow');
  t.match(slow, { rule: 'slow', runId });
  await s.clock.advance(2 * 60 * 60_000);
  t.equal((await s.host.notifications({})).items.filter((n) => n.rule === 'slow').length, 1, 'once per run (the 1h timer told nothing more)');
  release.open();
  await s.host.wait(runId);
});

t.test('a job removed while its runs are in flight: they finish on its old version, and their slow and failed are still told', async (t) => {
  const release = gate();
  const s = await startServer(t, {
    config: { notifications: notifications({ throttle: 0 }) },
    plugins: [
      definePlugin({
        name: 'gone',
        isolation: 'inline',
        timeout: '2h',
        notify: { on: ['failed', 'slow'], slowerThan: '10m', to: ['hook'] },
        handler: async () => {
          await release.promise;
          throw new Error('it broke after all');
        },
      }),
    ],
  });
  const { runId } = await s.host.trigger('gone');
  await until(() => s.of('run.started').length === 1, 5000, 'started');
  t.ok(s.host.unregister('gone'), 'removed, as deleting its file does');
  await s.clock.advance(10 * 60_000);
  await notified(s, 1, 'slow');
  release.open();
  t.equal((await s.host.wait(runId)).status, 'failed');
  const items = await notified(s, 2, 'failed');
  t.same(
    items.map((n) => [n.job, n.rule, n.runId]),
    [
      ['gone', 'slow', runId],
      ['gone', 'failed', runId],
    ],
  );
});

t.test('slow: a run whose slowerThan passes while it waits for a retry is told when its next attempt starts, once', async (t) => {
  const first = gate();
  const second = gate();
  const s = await startServer(t, {
    config: { notifications: notifications() },
    plugins: [
      definePlugin({
        name: 'long-haul',
        isolation: 'inline',
        timeout: '2h',
        retry: { attempts: 2, backoff: 'fixed', delay: '2m', jitter: 0 },
        notify: { on: ['slow'], slowerThan: '10m', to: ['hook'] },
        handler: async (ctx) => {
          if (ctx.attempt === 1) {
            await first.promise;
            throw new Error('flaky');
          }
          await second.promise;
        },
      }),
    ],
  });
  const { runId } = await s.host.trigger('long-haul');
  await until(() => s.of('run.started').length === 1, 5000, 'started');
  await s.clock.advance(9 * 60_000);
  first.open();
  await until(() => s.of('run.retrying').length === 1, 5000, 'the first attempt failed');
  await s.clock.advance(60_000 + 1);
  t.equal((await s.host.notifications({})).items.length, 0, 'waiting for its retry: not running, nothing sent yet');
  await s.clock.advance(60_000);
  await until(() => s.of('run.started').length === 2, 5000, 'the second attempt started');
  const [slow] = await notified(s, 1, 'slow once it runs again');
  t.match(slow, { rule: 'slow', runId });
  await s.clock.advance(60 * 60_000);
  second.open();
  await s.host.wait(runId);
  t.equal((await s.host.notifications({})).items.length, 1, 'once per run');
});

t.test('slow: a run whose next attempt ends at once after its retry delay outlived slowerThan is never told slow after its end', async (t) => {
  const s = await startServer(t, {
    config: { notifications: notifications({ throttle: 0 }) },
    plugins: [
      definePlugin({
        name: 'quick-again',
        isolation: 'inline',
        concurrency: 20,
        retry: { attempts: 2, backoff: 'fixed', delay: '2m', jitter: 0 },
        notify: { on: ['slow', 'succeeded'], slowerThan: '1m', to: ['hook'] },
        handler: async (ctx) => {
          if (ctx.attempt === 1) throw new Error('flaky');
          // 0–9 real milliseconds: the slow check its start sets off reads it running, and it ends
          // while that check still waits (for its claim to be durable), at one point or another.
          await new Promise((r) => setTimeout(r, (ctx.params as { ms: number }).ms));
          return 'fine';
        },
      }),
    ],
  });
  const ids: string[] = [];
  for (let ms = 0; ms < 10; ms++) ids.push((await s.host.trigger('quick-again', { params: { ms } })).runId);
  await until(() => s.of('run.retrying').length === 10, 5000, 'the first attempts failed');
  await s.clock.advance(2 * 60_000);
  for (const id of ids) t.equal((await s.host.wait(id)).status, 'succeeded');
  await notified(s, 10, 'the successes told');
  // A slow check still in flight has had its time to send (or not) by now.
  await new Promise((r) => setTimeout(r, 100));
  const items = (await s.host.notifications({ limit: 1000 })).items.reverse();
  for (const id of ids) {
    const rules = items.filter((n) => n.runId === id).map((n) => n.rule);
    t.equal(rules.at(-1), 'succeeded', `run ${id}: its end is the last word (${rules.join(', ')})`);
  }
});

t.test('slow: a run told slow is not told again when a restart runs it again (a stop that cut its attempt short, or a crash)', async (t) => {
  for (const crash of [false, true]) {
    const release = gate();
    const plugin = () =>
      definePlugin({
        name: 'long-haul',
        isolation: 'inline',
        timeout: '2h',
        retry: { attempts: 3, delay: 0, jitter: 0 },
        notify: { on: ['slow'], slowerThan: '10m', to: ['hook'] },
        handler: () => release.promise,
      });
    const config = { notifications: notifications() };
    const s = await startServer(t, { config, plugins: [plugin()] });
    const { runId } = await s.host.trigger('long-haul');
    await until(() => s.of('run.started').length === 1, 5000, 'started');
    await s.clock.advance(10 * 60_000);
    await notified(s, 1, 'slow');
    let dir = s.dir;
    if (crash) {
      // What a kill -9 leaves: the store as it is now.
      await s.host.flush();
      dir = tempDir(t);
      cpSync(s.dir, dir, { recursive: true });
    } else await s.host.stop({ graceMs: 0 });
    await s.clock.advance(60_000);

    const again = await startServer(t, { dir, clock: s.clock, config, plugins: [plugin()] });
    await until(() => again.of('run.started').some((e) => e.data.runId === runId), 5000, 'the run started again');
    // Its first start is more than 10 minutes ago: the rule looks at it at once, and on.
    await again.clock.advance(60 * 60_000);
    const slow = (await again.host.notifications({})).items.filter((n) => n.rule === 'slow');
    t.same(
      slow.map((n) => n.runId),
      [runId],
      `${crash ? 'a crash' : 'a stop'}: once per run`,
    );
    release.open();
    await again.host.wait(runId);
    await again.host.stop({ graceMs: 0 });
    await s.host.stop({ graceMs: 0 });
  }
});

t.test('missed: a fire refused by overlap, a run stuck queued, fires missed while the host was down; never for a disabled job', async (t) => {
  const release = gate();
  const plugin = () =>
    definePlugin({
      name: 'every-two',
      isolation: 'inline',
      schedule: '*/2 * * * * *',
      overlap: 'skip',
      notify: { on: ['missed'], to: ['hook'] },
      handler: () => release.promise,
    });
  const config = { notifications: notifications({ throttle: 0 }) };
  const s = await startServer(t, { config, plugins: [plugin()] });
  await s.clock.advance(2000);
  await until(() => s.of('run.started').length === 1, 5000, 'the first fire started');
  await s.clock.advance(2000);
  await until(() => s.of('run.skipped').length === 1, 5000, 'the second fire refused by overlap');
  // missedAfter defaults to one period (2 s).
  await s.clock.advance(2000);
  const [missed] = await notified(s, 1, 'the refused fire is missed');
  t.match(missed, {
    rule: 'missed',
    job: 'every-two',
    runId: '',
    title: 'Every Two Missed',
    message: /missed its schedule fire at .*the fire was refused \(overlap/,
  });
  release.open();
  await until(() => s.of('run.succeeded').length >= 1, 5000, 'released');
  const before = (await s.host.notifications({ limit: 1000 })).items.length;

  await s.host.setEnabled('every-two', false);
  // Past the 20 fires a start tells one by one: the disabled stretch must not take their place.
  await s.clock.advance(60_000);
  t.equal((await s.host.notifications({ limit: 1000 })).items.length, before, 'a disabled job is never missed');
  await s.host.setEnabled('every-two', true);
  await s.host.stop({ graceMs: 0 });

  // Down for three fires and past their missedAfter (one period): found at start, each once.
  await s.clock.advance(8000);
  const again = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
  const items = await notified(again, before + 3, 'the three fires missed while down');
  t.same(
    items.slice(before).map((n) => n.rule),
    ['missed', 'missed', 'missed'],
  );
  t.match(items.at(-1)!.message, /the host was down/);
  await again.host.stop({ graceMs: 0 });
  const third = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
  await third.clock.advance(0);
  t.equal((await third.host.notifications({ limit: 1000 })).items.length, before + 3, 'a restart does not tell them again');
});

t.test('missed: the fires of a job paused by itself or through its queue wait on purpose and are not missed', async (t) => {
  const s = await startServer(t, {
    config: { notifications: notifications({ throttle: 0 }) },
    plugins: [definePlugin({ name: 'ticks', isolation: 'inline', schedule: '*/2 * * * * *', notify: { on: ['missed'], to: ['hook'] }, handler: () => 'ok' })],
  });
  for (const pause of [() => s.host.pauses.queue('default', true), () => s.host.pauses.job('ticks', true)]) {
    const [queued, started] = [s.of('run.queued').length, s.of('run.started').length];
    await pause();
    for (let i = 0; i < 4; i++) await s.clock.advance(2000);
    await until(() => s.of('run.queued').length >= queued + 3, 5000, 'the fires recorded');
    t.equal(s.of('run.started').length, started, 'held');
    // Well past the fires' missedAfter (one period), with the time to tell one (a look at the run, a claim).
    await s.clock.advance(10_000);
    await new Promise((r) => setTimeout(r, 300));
    t.same(
      (await s.host.notifications({})).items.map((n) => n.message),
      [],
      'none missed',
    );
    await s.host.pauses.job('ticks', false);
    await s.host.pauses.queue('default', false);
    await until(() => s.of('run.queued').length === s.of('run.succeeded').length, 5000, 'released');
  }
});

t.test('missed: a fire of the downtime whose missedAfter runs out after the restart is missed then, unless a catch-up run stands for it', async (t) => {
  const plugin = (catchUp: boolean) =>
    definePlugin({
      name: 'every-two',
      isolation: 'inline',
      schedule: '*/2 * * * * *',
      catchUp,
      notify: { on: ['missed'], missedAfter: '5s', to: ['hook'] },
      handler: () => 'ok',
    });
  const config = { notifications: notifications({ throttle: 0 }) };
  for (const catchUp of [false, true]) {
    const s = await startServer(t, { config, plugins: [plugin(catchUp)] });
    await s.clock.advance(2000);
    await until(() => s.of('run.succeeded').length === 1, 5000, 'a fire ran');
    await s.host.stop({ graceMs: 0 });
    // Down for one fire (3 s, fires every 2 s): at the restart its 5 s have not run out.
    await s.clock.advance(3000);
    const again = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin(catchUp)] });
    await again.clock.advance(0);
    t.equal((await again.host.notifications({})).items.length, 0, `catchUp ${catchUp}: not missed before its time`);
    await again.clock.advance(5000);
    await until(() => again.of('run.succeeded').length >= 2, 5000, 'the restarted host fires');
    if (catchUp) {
      t.equal(again.of('run.queued').filter((e) => e.data['source'] === 'catch-up').length, 1, 'one catch-up run');
      await again.clock.advance(0);
      t.equal((await again.host.notifications({})).items.length, 0, 'the catch-up run started in time: nothing missed');
    } else {
      const [missed] = await notified(again, 1, 'the fire of the downtime is missed at its time');
      t.match(missed, { rule: 'missed', job: 'every-two', message: /the host was down/ });
      await again.clock.advance(10_000);
      t.equal((await again.host.notifications({})).items.length, 1, 'once, and the fires after the restart are not missed');
    }
    await again.host.stop({ graceMs: 0 });
  }
});

t.test('missed: a fire still watched when the host stops is told after the restart, once, and one told before it is not told again', async (t) => {
  const release = gate();
  const plugin = () =>
    definePlugin({
      name: 'every-three',
      isolation: 'inline',
      schedule: '*/3 * * * * *',
      overlap: 'skip',
      notify: { on: ['missed'], missedAfter: '5s', to: ['hook'] },
      handler: () => release.promise,
    });
  const config = { notifications: notifications({ throttle: 0 }) };
  const s = await startServer(t, { config, plugins: [plugin()] });
  const t0 = s.clock.now();
  await s.clock.advance(3000);
  await until(() => s.of('run.started').length === 1, 5000, 'the first fire started');
  await s.clock.advance(3000);
  await until(() => s.of('run.skipped').length === 1, 5000, 'the second fire refused by overlap');
  // Stopped (as by kill -9: the watch in memory goes) before the refused fire's 5 s ran out.
  await s.host.stop({ graceMs: 0 });
  await s.clock.advance(1000);

  const again = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
  await again.clock.advance(3999);
  t.equal((await again.host.notifications({})).items.length, 0, 'not before its time');
  await again.clock.advance(1);
  const [missed] = await notified(again, 1, 'the refused fire is missed after the restart');
  t.match(missed, { rule: 'missed', job: 'every-three', message: new RegExp(`fire at ${new Date(t0 + 6000).toISOString()}: the fire was refused \\(overlap`) });
  // The stop ended the first fire's run: the fire at 9 s started one, which refuses the fire at 12 s.
  await until(() => again.of('run.started').length === 1, 5000, 'the fire at 9 s started');
  await again.clock.advance(1000);
  await until(() => again.of('run.skipped').length === 1, 5000, 'the fire at 12 s refused');
  await again.host.stop({ graceMs: 0 });
  await again.clock.advance(1000);

  // The fire told before this restart is not told again; the one still watched is told at its time.
  const third = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
  await third.clock.advance(0);
  t.equal((await third.host.notifications({})).items.length, 1, 'the fire at 6 s is not told twice');
  await third.clock.advance(3999);
  t.equal((await third.host.notifications({})).items.length, 1, 'the fire at 12 s not before its time');
  await third.clock.advance(1);
  const items = await notified(third, 2, 'the fire at 12 s is missed at 17 s');
  t.match(items[1]!.message, new RegExp(`fire at ${new Date(t0 + 12_000).toISOString()}: the fire was refused`));
  await third.clock.advance(0);
  t.equal((await third.host.notifications({})).items.length, 2, 'each fire once');
  release.open();
});

t.test('missed: a fire whose run was queued when the host stopped is missed if the run starts late after the restart, not if it starts in time', async (t) => {
  for (const late of [true, false]) {
    let hold = true;
    const release = gate();
    const plugin = () =>
      definePlugin({
        name: 'every-three',
        isolation: 'inline',
        schedule: '*/3 * * * * *',
        concurrency: 1,
        overlap: 'allow',
        notify: { on: ['missed'], missedAfter: '5s', to: ['hook'] },
        handler: () => (hold ? release.promise : 'ok'),
      });
    const config = { notifications: notifications({ throttle: 0 }) };
    const s = await startServer(t, { config, plugins: [plugin()] });
    await s.clock.advance(3000);
    await until(() => s.of('run.started').length === 1, 5000, 'the first fire started');
    await s.clock.advance(3000);
    await until(() => s.of('run.queued').length === 2, 5000, 'the second fire queued behind it');
    const queued = s.of('run.queued')[1]!.data['runId'] as string;
    await s.host.stop({ graceMs: 0 });
    // Back after the queued run's 5 s ran out (late) or before; either way it starts at once.
    await s.clock.advance(late ? 6000 : 1000);
    hold = false;
    const again = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
    await until(() => again.of('run.started').some((e) => e.data['runId'] === queued), 5000, 'the queued run started');
    if (late) {
      const [missed] = await notified(again, 1, 'its fire is missed');
      t.match(missed, { rule: 'missed', message: new RegExp(`its run ${queued} (started more than|had not started) 5s after the fire`) });
    }
    // Past every watch's deadline (the fires of the restarted host start at once).
    await again.clock.advance(5000);
    await until(() => again.of('run.succeeded').length >= 2, 5000, 'the restarted host runs its fires');
    const items = (await again.host.notifications({ limit: 1000 })).items;
    t.equal(items.filter((n) => n.message.includes(queued)).length, late ? 1 : 0, late ? 'once' : 'started in time: not missed');
    // Down from 6 s to 12 s (late): the others are fires of the downtime.
    t.match(
      items.filter((n) => !n.message.includes(queued)),
      items.filter((n) => !n.message.includes(queued)).map(() => ({ message: /the host was down$/ })),
      'nothing else',
    );
    release.open();
    await again.host.stop({ graceMs: 0 });
  }
});

t.test(
  'missed: the fires a stalled host passed are missed once their missedAfter had run out when its timer came; the late run stands for the rest',
  async (t) => {
    const clock = createStallingClock();
    let stallMs = 0;
    const s = await startServer(t, {
      clock,
      config: { notifications: notifications({ throttle: 0 }) },
      plugins: [
        definePlugin({
          name: 'tick',
          isolation: 'inline',
          schedule: '* * * * * *',
          overlap: 'skip',
          notify: { on: ['missed'], missedAfter: '2s', to: ['hook'] },
          handler: () => 'ok',
        }),
        // An inline handler that keeps the event loop busy: nothing fires while it runs.
        definePlugin({ name: 'block', isolation: 'inline', handler: () => void clock.stall(stallMs) }),
      ],
    });
    const t0 = clock.now();
    const at = (s: number): string => new Date(t0 + s * 1000).toISOString();
    await clock.advance(1500);
    stallMs = 5000;
    await s.host.wait((await s.host.trigger('block')).runId);
    // The fire due at 2 s comes at 7 s: the fires of 2 to 5 s were past their 2 s then; 6 and 7 s were not, and its run starts in time for them.
    await clock.advance(500);
    await until(() => s.of('run.started').filter((e) => e.data.job === 'tick').length === 2, 5000, 'the late fire ran');
    let items = await notified(s, 4, 'the fires the stall passed');
    t.same(
      items.map((n) => [n.rule, n.message.match(/fire at (\S+): (.*)$/)?.slice(1)]),
      [2, 3, 4, 5].map((i) => ['missed', [at(i), 'the host was stalled']]),
    );
    await clock.advance(5000);
    t.equal((await s.host.notifications({ limit: 1000 })).items.length, 4, 'the fires after the stall are not missed');

    // A long stall: told as a downtime is, 20 one by one, the last standing for the rest.
    stallMs = 30_000;
    const from = (clock.now() - t0) / 1000 + 1;
    await s.host.wait((await s.host.trigger('block')).runId);
    await clock.advance(1000);
    items = (await notified(s, 24, 'the fires of the long stall')).slice(4);
    t.same(
      items.map((n) => n.message.match(/fire at (\S+):/)?.[1]),
      Array.from({ length: 20 }, (_, i) => at(from + i)),
    );
    t.match(items.at(-1)!.message, /the host was stalled \(and 9 later fires\)$/);
    await clock.advance(5000);
    t.equal((await s.host.notifications({ limit: 1000 })).items.length, 24, 'each once');
  },
);

t.test('storm control: 10,000 failures become one message and one digest with the count; memory holds counts only', async (t) => {
  const hook = await httpReceiver(t);
  const s = await startServer(t, {
    config: { concurrency: 64, notifications: { destinations: { hook: { kind: 'webhook', url: hook.url } } } },
    plugins: [
      definePlugin({
        name: 'storm',
        isolation: 'inline',
        concurrency: 64,
        notify: { title: 'Storm', on: ['failed'], to: ['hook'] },
        handler: () => {
          throw new Error('down');
        },
      }),
    ],
  });
  const ids: string[] = [];
  for (let i = 0; i < 10_000; i++) ids.push((await s.host.trigger('storm')).runId);
  await until(async () => (await s.host.run(ids.at(-1)!))?.status === 'failed', 60_000, 'all failed');
  await hook.count(1);
  t.equal(hook.received.length, 1, 'one message in the window');
  // The rest are counts in the window: not 9,999 records, nor 9,999 events.
  t.equal(s.of('notification').length, 1, 'one notification event');
  t.equal((await s.host.notifications({ limit: 1000 })).items.length, 1, 'one notification recorded');
  await s.clock.advance(60_000);
  await hook.count(2);
  const digest = hook.received[1]!.json as Notification;
  t.match(digest, {
    rule: 'digest',
    job: 'storm',
    status: 'failed',
    title: 'Storm: 9999 notifications held back',
    held: { count: 9_999, statuses: { failed: 9_999 } },
  });
  t.match(digest.message, /held back 9999 notifications of job storm for hook in the last 1m: 9999 failed/);
  await s.clock.advance(60_000);
  t.equal(hook.received.length, 2, 'a quiet window sends nothing');
  t.equal((await s.host.notifications({ limit: 1000 })).items.length, 2, 'the message and the digest');
});

t.test('storm control: a live edit of throttle applies from the next window on, the one a digest opens included; 0 opens none', async (t) => {
  const hook = await httpReceiver(t);
  const destinations = { hook: { kind: 'webhook' as const, url: hook.url } };
  const s = await startServer(t, {
    config: { notifications: { destinations, throttle: '1m' } },
    plugins: [definePlugin({ name: 'flaps', isolation: 'inline', notify: { on: ['failed'], to: ['hook'] }, handler: () => Promise.reject(new Error('down')) })],
  });
  const fail = async (): Promise<void> => void (await s.host.wait((await s.host.trigger('flaps')).runId));
  await fail();
  await fail();
  await hook.count(1);
  s.host.applyConfig({ ...s.host.config, notifications: { destinations, throttle: '5s' } });
  await s.clock.advance(60_000);
  await hook.count(2);
  t.match(hook.received[1]!.json, { rule: 'digest', held: { count: 1 } }, 'the 1m window ends as it was opened');
  // The digest opened the next window, 5 s long now.
  await fail();
  await s.clock.advance(5000);
  await hook.count(3);
  t.match(hook.received[2]!.json, { rule: 'digest', held: { count: 1 } }, "the digest's window took the new throttle");
  // Turned off while the window that digest opened is still open: nothing is held from now on.
  s.host.applyConfig({ ...s.host.config, notifications: { destinations, throttle: 0 } });
  await fail();
  await fail();
  await hook.count(5);
  t.match(
    hook.received.slice(3).map((r) => r.json),
    [{ rule: 'failed' }, { rule: 'failed' }],
    'throttle 0: every failure goes at once',
  );
  await s.clock.advance(60_000);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(hook.received.length, 5, 'and no digest follows');
});

t.test('a recovery after throttle was edited to 0 still takes what the window opened before the edit held', async (t) => {
  const hook = await httpReceiver(t);
  const destinations = { hook: { kind: 'webhook' as const, url: hook.url } };
  let fail = true;
  const s = await startServer(t, {
    config: { notifications: { destinations, throttle: '8s' } },
    plugins: [
      definePlugin({
        name: 'flaps',
        isolation: 'inline',
        notify: { on: ['failed', 'recovered'], to: ['hook'] },
        handler: () => (fail ? Promise.reject(new Error('down')) : 'ok'),
      }),
    ],
  });
  const run = async (): Promise<void> => void (await s.host.wait((await s.host.trigger('flaps')).runId));
  await run();
  await run(); // held back in the 8 s window the first one opened
  s.host.applyConfig({ ...s.host.config, notifications: { destinations, throttle: 0 } });
  fail = false;
  await run();
  const items = await notified(s, 2, 'the failure and the recovery');
  t.equal(items[1]!.rule, 'recovered');
  t.match(items[1]!.message, /held back 1 notification before it: 1 failed/, 'the recovery tells what its window held: no failing digest is left to follow it');
});

t.test('bad rules are plugin or config errors naming the field', async (t) => {
  const s = await startServer(t, { config: { notifications: notifications() } });
  const bad: Array<[Record<string, unknown>, RegExp, string]> = [
    [{ on: ['slow'] }, /^notify\.slowerThan: required when notify\.on has 'slow'/, 'PLUGIN_INVALID'],
    [{ on: ['slow'], slowerThan: 'soon' }, /^notify\.slowerThan: invalid duration/, 'INVALID_DURATION'],
    [{ on: ['missed'] }, /^notify\.on: 'missed' needs a schedule/, 'PLUGIN_INVALID'],
    [{ on: ['failed'], after: 0 }, /^notify\.after: expected 1 or more/, 'PLUGIN_INVALID'],
    [{ on: ['missed'], missedAfter: -5, to: ['hook'] }, /^notify\.missedAfter: invalid duration/, 'INVALID_DURATION'],
  ];
  for (const [notify, message, code] of bad) {
    t.throws(() => s.host.register(definePlugin({ name: 'x', notify: notify as never, handler: () => 1 })), { code, message }, JSON.stringify(notify));
  }
  s.host.register(definePlugin({ name: 'y', notify: { on: ['failed'] }, handler: () => 1 }));
  // The config file's error, with the path a live edit's config.error shows.
  t.throws(() => s.host.applyConfig({ notifications: notifications(), jobs: { y: { notify: { on: ['missed'] } } } }), {
    code: 'CONFIG_INVALID',
    message: /^jobs\.y\.notify\.on: 'missed' needs a schedule/,
    details: { path: 'jobs.y.notify.on' },
  });
  t.throws(() => s.host.applyConfig({ notifications: notifications(), jobs: { y: { notify: { on: ['slow'] } } } }), {
    code: 'CONFIG_INVALID',
    details: { path: 'jobs.y.notify.slowerThan' },
  });
  // Each error is where its cause is: a config that only adds destinations does not take the
  // plugin's bad rule on itself, and a config that drops the schedule a plugin's `missed` needs does.
  s.host.applyConfig({ notifications: notifications(), jobs: { x: { notify: { to: ['hook'] } } } });
  t.throws(() => s.host.register(definePlugin({ name: 'x', notify: { on: ['missed'] }, handler: () => 1 })), {
    code: 'PLUGIN_INVALID',
    details: { path: 'notify.on' },
  });
  // A plugin with no schedule of its own: the config's `schedule: null` took nothing from it.
  s.host.applyConfig({ notifications: notifications(), jobs: { w: { schedule: null } } });
  t.throws(() => s.host.register(definePlugin({ name: 'w', notify: { on: ['missed'] }, handler: () => 1 })), {
    code: 'PLUGIN_INVALID',
    details: { path: 'notify.on' },
  });
  s.host.register(definePlugin({ name: 'z', schedule: '0 * * * *', notify: { on: ['missed'] }, handler: () => 1 }));
  t.throws(() => s.host.applyConfig({ notifications: notifications(), jobs: { z: { schedule: null } } }), {
    code: 'CONFIG_INVALID',
    message: /^jobs\.z\.schedule: the plugin's notify\.on has 'missed'/,
    details: { path: 'jobs.z.schedule' },
  });
  t.throws(() => s.host.applyConfig({ notifications: notifications({ host: { to: ['nope'] } }) }), {
    message: /^notifications\.host\.to\.0: no destination "nope"/,
  });
});

t.test('PagerDuty: a failure triggers the incident of its job, recovered resolves it (same dedup_key)', async (t) => {
  const pd = await httpReceiver(t);
  pd.fallback = { status: 202, body: '{"status":"success"}' };
  let fail = true;
  const s = await startServer(t, {
    config: { notifications: { destinations: { pager: { kind: 'pagerduty', routingKey: 'rk-0123456789', url: pd.url } }, throttle: 0 } },
    plugins: [
      definePlugin({
        name: 'billing-sync',
        isolation: 'inline',
        notify: { on: ['failed', 'recovered'], to: ['pager'] },
        handler: () => {
          if (fail) throw new Error('card processor down');
        },
      }),
    ],
  });
  await s.host.wait((await s.host.trigger('billing-sync')).runId);
  fail = false;
  await s.host.wait((await s.host.trigger('billing-sync')).runId);
  await pd.count(2);
  t.match(pd.received[0]!.json, { event_action: 'trigger', dedup_key: 'billing-sync', payload: { summary: /card processor down/ } });
  t.match(pd.received[1]!.json, { event_action: 'resolve', dedup_key: 'billing-sync' });
});

t.test(
  'storm control never holds back a recovery; what its window held goes with it, not as a trigger after it; a stop sends the digest of what its windows held',
  async (t) => {
    const pd = await httpReceiver(t);
    pd.fallback = { status: 202, body: '{"status":"success"}' };
    let fail = true;
    const plugin = () =>
      definePlugin({
        name: 'ledger',
        isolation: 'inline',
        notify: { on: ['failed', 'recovered'], to: ['pager'] },
        handler: () => {
          if (fail) throw new Error('ledger locked');
        },
      });
    // The default 1m throttle: the second failure and the recovery fall in the first one's window.
    const config = { notifications: { destinations: { pager: { kind: 'pagerduty' as const, routingKey: 'rk-0123456789', url: pd.url } } } };
    const s = await startServer(t, { config, plugins: [plugin()] });
    const actions = () => pd.received.map((r) => (r.json as { event_action: string }).event_action);
    for (let i = 0; i < 2; i++) await s.host.wait((await s.host.trigger('ledger')).runId);
    fail = false;
    await s.host.wait((await s.host.trigger('ledger')).runId);
    await pd.count(2);
    t.same(actions(), ['trigger', 'resolve'], 'the recovery resolves the incident at once');
    const recovered = (await s.host.notifications({})).items.find((n) => n.rule === 'recovered');
    t.match(recovered?.message, /Storm control held back 1 notification before it: 1 failed\./, 'the held failure is told with the recovery');
    await s.clock.advance(60_000);
    await s.clock.advance(60_000);
    t.same(actions(), ['trigger', 'resolve'], 'no failing digest after the recovery: the incident stays resolved');

    // A stop in a window that holds a failure: it goes out as the window's digest before the host ends.
    fail = true;
    for (let i = 0; i < 2; i++) await s.host.wait((await s.host.trigger('ledger')).runId);
    await pd.count(3);
    await s.host.stop({ graceMs: 0 });
    const again = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
    // At least once: a delivery cut short by the stop may come again; the digest comes once.
    await until(() => pd.received.some((r) => /held back/.test(JSON.stringify(r.json))), 10_000, 'the digest');
    const digests = pd.received.filter((r) => /held back/.test(JSON.stringify(r.json)));
    t.equal(digests.length, 1);
    t.match(digests[0]!.json, { event_action: 'trigger', payload: { summary: /1 notification held back/ } });
    t.equal((await again.host.notifications({ limit: 10 })).items.filter((n) => n.rule === 'digest').length, 1, 'one digest, recorded');
  },
);

t.test("storm control: a recovery does not count its own run's succeeded as held back before it; that one is its window's digest's", async (t) => {
  let fail = true;
  const s = await startServer(t, {
    config: { notifications: notifications({ throttle: '5s' }) },
    plugins: [
      definePlugin({
        name: 'flaky',
        isolation: 'inline',
        notify: { on: ['succeeded', 'failed', 'recovered'], to: ['hook'] },
        handler: () => {
          if (fail) throw new Error('nope');
        },
      }),
    ],
  });
  await s.host.wait((await s.host.trigger('flaky')).runId);
  fail = false;
  const ok = (await s.host.trigger('flaky')).runId;
  await s.host.wait(ok);
  let items = await notified(s, 2, 'the failure and the recovery');
  t.match(
    items.map((n) => [n.rule, n.runId]),
    [
      ['failed', String],
      ['recovered', ok],
    ],
  );
  t.notMatch(items[1]!.message, /held back/, 'nothing held back before it: its own success is not');
  await s.clock.advance(5000);
  items = await notified(s, 3, "the window's digest");
  t.match(items[2], { rule: 'digest', held: { count: 1, statuses: { succeeded: 1 } } }, 'the success held back in the open window is told by its digest');
});

t.test('a digest that holds the success a job ended with is labelled succeeded: on PagerDuty it resolves, never opens again', async (t) => {
  const pd = await httpReceiver(t);
  let attempt = 0;
  const plugin = definePlugin({
    name: 'rt',
    isolation: 'inline',
    retry: { attempts: 2, delay: '100ms', jitter: 0 },
    notify: { on: ['retrying', 'succeeded'], to: ['pager', 'hook'] },
    // Each run fails its first attempt and succeeds its second.
    handler: () => {
      if (++attempt % 2 === 1) throw new Error('blip');
      return 'ok';
    },
  });
  const hook = await httpReceiver(t);
  const config = {
    notifications: {
      destinations: { pager: { kind: 'pagerduty' as const, routingKey: 'R0UTINGKEY123456', url: pd.url }, hook: { kind: 'webhook' as const, url: hook.url } },
      throttle: '8s',
    },
  };
  const s = await startServer(t, { config, plugins: [plugin] });
  for (let i = 0; i < 2; i++) {
    const { runId } = await s.host.trigger('rt');
    await until(async () => (await s.host.run(runId))?.status === 'queued' && (await s.host.run(runId))!.attempts.length === 1, 5000, 'retrying');
    await s.clock.advance(100);
    await s.host.wait(runId);
  }
  await pd.count(1);
  t.equal((pd.received[0]!.json as { event_action: string }).event_action, 'trigger', 'the first retrying opens the incident');
  await s.clock.advance(8000);
  const items = await notified(s, 3, 'the two digests');
  const digestTo = (name: string) => items.find((n) => n.rule === 'digest' && n.deliveries[0]?.destination === name);
  t.match(digestTo('pager'), { status: 'succeeded', held: { count: 3, statuses: { retrying: 1, succeeded: 2 } } });
  t.match(digestTo('hook'), { status: 'retrying', held: { count: 3 } }, 'to other destinations, the worst status it holds');
  await pd.count(2);
  t.equal((pd.received[1]!.json as { event_action: string }).event_action, 'resolve', 'the digest resolves it: the job ended well');
});

t.test('a stop sends the digests of the windows it opened before it ends; a receiver that hangs holds it no longer than its bound', async (t) => {
  const hook = await httpReceiver(t);
  const plugin = () =>
    definePlugin({
      name: 'breaks',
      isolation: 'inline',
      notify: { title: 'Breaks', on: ['failed'], to: ['hook'] },
      handler: () => {
        throw new Error('down');
      },
    });
  // grace 0 + margin 2 s: the stop's deadline; what is left of it bounds the last attempts.
  const config = { shutdown: { margin: '2s' }, notifications: { destinations: { hook: { kind: 'webhook' as const, url: hook.url } }, throttle: '30s' } };
  const s = await startServer(t, { config, plugins: [plugin()] });
  for (let i = 0; i < 3; i++) await s.host.wait((await s.host.trigger('breaks')).runId);
  await hook.count(1);
  await s.host.stop({ graceMs: 0 });
  t.equal(hook.received.length, 2, 'the digest reached the receiver before stop() resolved');
  t.match(hook.received[1]?.json, { rule: 'digest', held: { count: 2, statuses: { failed: 2 } } });
  t.equal(s.of('notification.delivered').length, 2, 'and was recorded delivered: the next start does not send it again');

  // Again, with a receiver that hangs on the digest: the stop ends within its deadline anyway, and
  // the digest, cut short, is made again after the next start under the same id.
  const again = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
  await s.clock.advance(30_000);
  for (let i = 0; i < 2; i++) await again.host.wait((await again.host.trigger('breaks')).runId);
  await hook.count(3);
  hook.script('hang');
  const began = Date.now();
  await again.host.stop({ graceMs: 0 });
  const took = Date.now() - began;
  // Its deadline is 2 s (about 1 s taken); the bound here only tells it from a stop that waited on
  // the hanging receiver (its 5 min timeout), and leaves a loaded machine its stalls.
  t.ok(took < 10_000, `the stop ended at its deadline, not the receiver's timeout (${took} ms), with no STOP_INCOMPLETE`);
  t.equal(hook.received.length, 4, 'the digest was attempted');
  const third = await startServer(t, { dir: s.dir, clock: s.clock, config, plugins: [plugin()] });
  await hook.count(5);
  t.equal(hook.received[4]!.headers['webhook-id'], hook.received[3]!.headers['webhook-id'], 'made again after the next start, same id');
  await until(() => third.of('notification.delivered').length === 1, 5000, 'delivered after the restart');
});

t.test('a stop with no digest to send waits on no delivery: a receiver that hangs does not hold it', async (t) => {
  const hook = await httpReceiver(t);
  hook.script('hang');
  const plugin = definePlugin({
    name: 'breaks',
    isolation: 'inline',
    notify: { title: 'Breaks', on: ['failed'], to: ['hook'] },
    handler: () => {
      throw new Error('down');
    },
  });
  // A long delivery timeout and stop deadline: a stop that waited on the hanging delivery would take seconds.
  const config = {
    shutdown: { margin: '60s' },
    notifications: { destinations: { hook: { kind: 'webhook' as const, url: hook.url } }, throttle: 0, timeout: '60s' },
  };
  const s = await startServer(t, { config, plugins: [plugin] });
  await s.host.wait((await s.host.trigger('breaks')).runId);
  await hook.count(1);
  const stopped = s.host.stop({ graceMs: 0 }).then(() => 'stopped');
  let timer: NodeJS.Timeout | undefined;
  const waiting = new Promise((resolve) => (timer = setTimeout(resolve, 5000, 'still waiting after 5 s')));
  t.equal(await Promise.race([stopped, waiting]), 'stopped');
  clearTimeout(timer);
});
