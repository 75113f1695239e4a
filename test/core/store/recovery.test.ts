import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { startHost, tempDir, until } from '../../helpers.js';

const noop = (): undefined => undefined;
const HOUR = 3_600_000;

t.test('catchUp: a fire missed while the host was down runs once on start, with source catch-up', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const plugin = { name: 'hourly', schedule: '0 * * * *', catchUp: true, handler: noop };
  const a = await startHost(t, { dir, clock, plugins: [plugin] });
  await clock.set(Date.parse('2026-01-05T11:00:00Z'));
  t.equal(a.of('run.succeeded').length, 1, 'fired at 11:00 while up');
  await a.host.stop();

  // down from 11:00:00 to 15:30: the 12:00, 13:00, 14:00 and 15:00 fires are missed
  await clock.set(Date.parse('2026-01-05T15:30:00Z'));
  const b = await startHost(t, { dir, clock, plugins: [plugin] });
  await clock.advance(0);
  const queued = b.of('run.queued');
  t.equal(queued.length, 1, 'once, not once per missed fire');
  t.equal(queued[0]!.data.source, 'catch-up');
  await clock.advance(30 * 60_000);
  t.same(
    b.of('run.queued').map((e) => e.data.source),
    ['catch-up', 'schedule'],
    'then the schedule carries on',
  );
});

t.test('without catchUp, missed fires are skipped', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const plugin = { name: 'hourly', schedule: '0 * * * *', handler: noop };
  const a = await startHost(t, { dir, clock, plugins: [plugin] });
  await a.host.stop();
  await clock.advance(5 * HOUR);
  const b = await startHost(t, { dir, clock, plugins: [plugin] });
  await clock.advance(0);
  t.equal(b.of('run.queued').length, 0);
});

t.test('a catch-up also happens for a job registered after start (a plugin file loaded later)', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const plugin = { name: 'daily', schedule: '0 6 * * *', catchUp: true, handler: noop };
  const a = await startHost(t, { dir, clock, plugins: [plugin] });
  await a.host.stop();
  await clock.advance(24 * HOUR);
  const b = await startHost(t, { dir, clock });
  b.host.register(plugin);
  await clock.advance(0);
  t.same(
    b.of('run.queued').map((e) => e.data.source),
    ['catch-up'],
  );
});

t.test('a disabled stretch is not downtime: enabled, then restarted before the next fire, no catch-up run', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const plugin = { name: 'hourly', schedule: '0 * * * *', catchUp: true, handler: noop };
  const a = await startHost(t, { dir, clock, plugins: [plugin] });
  await clock.set(Date.parse('2026-01-05T11:00:00Z'));
  t.equal(a.of('run.succeeded').length, 1, 'fired at 11:00');
  await a.host.disable('hourly');
  // Disabled (the host up) over the 12:00 to 15:00 fires, enabled at 15:30, stopped at 15:45.
  await clock.set(Date.parse('2026-01-05T15:30:00Z'));
  await a.host.enable('hourly');
  await clock.set(Date.parse('2026-01-05T15:45:00Z'));
  await a.host.stop();
  const b = await startHost(t, { dir, clock, plugins: [plugin] });
  await clock.advance(0);
  t.equal(b.of('run.queued').length, 0, 'the fires of the disabled stretch were never due');
  // Down from 15:45 to 17:10: the 16:00 and 17:00 fires are downtime, caught up once.
  await b.host.stop();
  await clock.set(Date.parse('2026-01-05T17:10:00Z'));
  const c = await startHost(t, { dir, clock, plugins: [plugin] });
  await clock.advance(0);
  t.same(
    c.of('run.queued').map((e) => e.data.source),
    ['catch-up'],
  );
});

t.test('once and cooldown hold across restarts', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:00:00Z'));
  const plugins = [
    { name: 'migrate', once: true, handler: noop },
    { name: 'cool', cooldown: '1h', handler: noop },
  ];
  const a = await startHost(t, { dir, clock, plugins });
  await a.host.wait((await a.host.trigger('migrate')).runId);
  await a.host.wait((await a.host.trigger('cool')).runId);
  await a.host.stop();
  await clock.advance(10 * 60_000);
  const b = await startHost(t, { dir, clock, plugins });
  await t.rejects(b.host.trigger('migrate'), { code: 'SKIPPED', details: { reason: 'once' } });
  await t.rejects(b.host.trigger('cool'), { code: 'SKIPPED', details: { reason: 'cooldown' } });
  await clock.advance(HOUR);
  t.ok((await b.host.trigger('cool')).runId);
});

t.test('once survives retention dropping the successful run from history', async (t) => {
  const dir = tempDir(t);
  const plugins = [
    { name: 'migrate', once: true, handler: noop },
    { name: 'busy', handler: noop },
  ];
  const a = await startHost(t, { dir, plugins, config: { store: { keepRuns: 100 } } });
  const first = await a.host.wait((await a.host.trigger('migrate')).runId);
  for (let i = 0; i < 350; i++) await a.host.wait((await a.host.trigger('busy')).runId);
  t.equal(await a.host.run(first.id), undefined, 'the run itself has left history');
  await a.host.stop();
  const b = await startHost(t, { dir, plugins, config: { store: { keepRuns: 100 } } });
  await t.rejects(b.host.trigger('migrate'), { code: 'SKIPPED', details: { reason: 'once' } });
});

t.test('delayed runs keep their runAt across restarts; enabled flags survive', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:00:00Z'));
  const plugins = [{ name: 'later', handler: noop }];
  const a = await startHost(t, { dir, clock, plugins });
  const { runId } = await a.host.trigger('later', { runAt: '2026-01-05T12:00:00Z' });
  await a.host.disable('later');
  await a.host.stop();
  const b = await startHost(t, { dir, clock, plugins });
  t.equal(b.host.job('later')!.enabled, false);
  t.match(await b.host.run(runId), { status: 'queued', runAt: '2026-01-05T12:00:00.000Z' });
  await clock.set(Date.parse('2026-01-05T11:59:59Z'));
  t.equal((await b.host.run(runId))!.status, 'queued');
  await clock.set(Date.parse('2026-01-05T12:00:00Z'));
  t.equal((await b.host.wait(runId)).status, 'succeeded', 'an acknowledged delayed run still runs while its job is disabled');
});

t.test('after a crash, job counts, last run and once/cooldown come back from the runs written since the checkpoint', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:00:00Z'));
  const plugins = [
    { name: 'migrate', once: true, handler: noop },
    { name: 'cool', cooldown: '1h', handler: noop },
    {
      name: 'bad',
      handler: () => {
        throw new Error('x');
      },
    },
  ];
  const a = await startHost(t, { dir, clock, plugins });
  await a.host.disable('bad');
  await a.host.enable('bad');
  await a.host.disable('bad');
  await a.host.enable('bad');
  for (let i = 0; i < 3; i++) await a.host.wait((await a.host.trigger('bad')).runId);
  const once = await a.host.wait((await a.host.trigger('migrate')).runId);
  await a.host.wait((await a.host.trigger('cool')).runId);
  await a.host.disable('cool');
  await a.host.flush();
  const { cpSync } = await import('node:fs');
  cpSync(dir, crashed, { recursive: true }); // as a kill -9 would leave it: no closing checkpoint

  const b = await startHost(t, { dir: crashed, clock, plugins });
  t.match(b.host.job('bad')!.counts, { failed: 3, succeeded: 0 }, 'counted once each, not twice');
  t.match(b.host.job('migrate')!.lastRun, { runId: once.id, status: 'succeeded' });
  t.equal(b.host.job('cool')!.enabled, false, 'the journaled flag');
  t.equal(b.host.job('bad')!.enabled, true);
  await b.host.enable('cool');
  await t.rejects(b.host.trigger('migrate'), { code: 'SKIPPED', details: { reason: 'once' } });
  await t.rejects(b.host.trigger('cool'), { code: 'SKIPPED', details: { reason: 'cooldown' } });
  await b.host.stop();
  // and after a clean restart of that, still once each
  const c = await startHost(t, { dir: crashed, clock, plugins });
  t.match(c.host.job('bad')!.counts, { failed: 3 });
  t.equal(c.host.stats().perJob['bad']!.count, 3);
});

t.test('after a crash right after a checkpoint, runs finished but not yet written are counted once', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:00:00Z'));
  // A checkpoint every 37 finished runs lands while other runs have finished in memory and wait
  // for the next commit; the copy is taken after them, before the next checkpoint.
  // Handlers that end a turn later finish while a commit is on the disk: final in memory, not yet written.
  const later = (): Promise<void> => new Promise((r) => setTimeout(r, Math.random() * 3));
  const a = await startHost(t, { dir, clock, plugins: [{ name: 'w', concurrency: 50, handler: later }], storeOptions: { checkpointRuns: 37 } });
  const ids: string[] = [];
  const producer = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) ids.push((await a.host.trigger('w')).runId);
  };
  await Promise.all(Array.from({ length: 10 }, producer));
  await Promise.all(ids.map((id) => a.host.wait(id)));
  await a.host.flush();
  const { cpSync } = await import('node:fs');
  cpSync(dir, crashed, { recursive: true });
  const b = await startHost(t, { dir: crashed, clock, plugins: [{ name: 'w', handler: noop }] });
  t.equal(b.host.job('w')!.counts.succeeded, 200);
});

t.test("a run's end and its notification are kept together: a crash that lost the segment's write does not tell the run twice", async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:00:00Z'));
  const plugins = [
    {
      name: 'bad',
      notify: { on: ['failed' as const], to: ['hook'] },
      handler: () => {
        throw new Error('it failed');
      },
    },
  ];
  const config = { notifications: { destinations: { hook: { kind: 'webhook' as const, url: 'http://127.0.0.1:1/' } }, throttle: 0 } };
  const a = await startHost(t, { dir, clock, plugins, config });
  const { runId } = await a.host.trigger('bad');
  await a.host.wait(runId);
  await until(async () => (await a.host.notifications({})).items.length === 1, 5000, 'the notification recorded');
  await a.host.flush();
  const { cpSync } = await import('node:fs');
  cpSync(dir, crashed, { recursive: true }); // as a kill -9 would leave it: no closing checkpoint
  // The kill came between the journal's write and the segment's: the run's end is not in its segment.
  let cut = 0;
  for (const name of readdirSync(path.join(crashed, 'segments')).filter((f) => f.endsWith('.ndjson'))) {
    const file = path.join(crashed, 'segments', name);
    const lines = readFileSync(file, 'utf8').split('\n');
    const kept = lines.filter((line) => !line.includes(`"id":"${runId}"`));
    cut += lines.length - kept.length;
    writeFileSync(file, kept.join('\n'));
  }
  t.equal(cut, 1, "the run's end taken out of its segment");

  const b = await startHost(t, { dir: crashed, clock, plugins, config });
  t.match(await b.host.run(runId), { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'it failed' } }, 'its end as it was, not interrupted');
  await b.host.flush();
  const told = (await b.host.notifications({})).items.filter((n) => n.runId === runId);
  t.equal(told.length, 1, 'told once');
  t.match(told[0], { status: 'failed', message: /it failed/ });
});
