import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { cronSchedule } from '../../../core/schedule/cron.js';
import { Scheduler } from '../../../core/schedule/scheduler.js';
import { createStallingClock, startHost } from '../../helpers.js';
import { DST_CASES, type DstCase } from './dst-cases.js';

const noop = (): undefined => undefined;

t.test('cron schedules fire through the trigger path with source schedule', async (t) => {
  const { host, clock, of } = await startHost(t);
  host.register({ name: 'tick', schedule: '*/10 * * * * *', handler: noop });
  t.equal(host.job('tick')!.nextRun, '2026-01-05T12:00:10.000Z');
  await clock.advance(10_000);
  t.equal(of('run.started').length, 1);
  t.match(of('run.queued')[0]!.data, { job: 'tick', source: 'schedule' });
  await clock.advance(30_000);
  t.equal(of('run.succeeded').length, 4);
  t.equal(host.job('tick')!.nextRun, '2026-01-05T12:00:50.000Z');
});

t.test('every schedules fire on multiples of the interval', async (t) => {
  const { host, clock, of } = await startHost(t);
  host.register({ name: 'poll', schedule: { every: '15m' }, handler: noop });
  t.equal(host.job('poll')!.nextRun, '2026-01-05T12:15:00.000Z');
  t.equal(host.job('poll')!.schedule, 'every 15m');
  await clock.advance(60 * 60_000);
  t.equal(of('run.succeeded').length, 4);
});

t.test('a schedule in a zone fires on its wall clock, and runs once at a DST jump', async (t) => {
  const { host, clock, of } = await startHost(t, { clock: createManualClock(Date.parse('2026-03-07T12:00:00Z')) });
  host.register({ name: 'nightly', schedule: '30 2 * * *', timezone: 'America/New_York', handler: noop });
  t.equal(host.job('nightly')!.nextRun, '2026-03-08T07:00:00.000Z', '02:30 does not exist that night: 03:00 EDT');
  await clock.set(Date.parse('2026-03-10T12:00:00Z'));
  t.same(
    of('run.started').map((e) => e.at),
    ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z', '2026-03-10T06:30:00.000Z'],
  );
});

t.test('changing or removing a schedule re-arms or stops it, leaking no timer', async (t) => {
  // No attempt timeouts: the only timers here are the schedules'.
  const { host, clock, of } = await startHost(t, { config: { defaults: { timeout: 0 } } });
  const base = clock.pending();
  host.register({ name: 'a', schedule: '0 * * * *', handler: noop });
  t.equal(clock.pending(), base + 1);
  host.register({ name: 'a', schedule: '*/5 * * * *', handler: noop });
  t.equal(clock.pending(), base + 1, 're-registering replaced the timer');
  t.equal(host.job('a')!.nextRun, '2026-01-05T12:05:00.000Z');
  t.match(of('job.updated')[0]!.data, { job: 'a', changed: ['plugin', 'schedule'] });
  await host.disable('a');
  t.equal(clock.pending(), base, 'disabled: no timer');
  t.equal(host.job('a')!.nextRun, null);
  await clock.advance(10 * 60_000);
  t.equal(of('run.queued').length, 0);
  await host.enable('a');
  t.equal(clock.pending(), base + 1);
  await clock.advance(5 * 60_000);
  t.equal(of('run.succeeded').length, 1);
  host.register({ name: 'a', handler: noop });
  t.equal(clock.pending(), base, 'schedule removed');
  t.equal(host.job('a')!.nextRun, null);
  host.register({ name: 'b', schedule: '* * * * *', handler: noop });
  host.unregister('b');
  t.equal(clock.pending(), base, 'unregister stops the schedule');
  t.same(
    of('job.removed').map((e) => e.data.job),
    ['b'],
  );
});

t.test('a scheduled fire refused by overlap emits run.skipped with source schedule', async (t) => {
  const { host, clock, of } = await startHost(t);
  host.register({ name: 'slow', schedule: '* * * * *', overlap: 'skip', handler: () => new Promise(() => undefined) });
  await clock.advance(60_000);
  await clock.advance(60_000);
  t.match(of('run.skipped')[0]!.data, { job: 'slow', reason: 'overlap', source: 'schedule' });
});

t.test('stop leaves no timer behind', async (t) => {
  const { host, clock } = await startHost(t, { config: { defaults: { timeout: 0 } } });
  host.register({
    name: 'x',
    schedule: '* * * * *',
    retry: { attempts: 3, delay: '1h' },
    handler: () => {
      throw new Error('x');
    },
  });
  host.register({ name: 'y', handler: noop });
  await host.trigger('y', { delay: '1d' });
  await clock.advance(60_000); // x fails and waits an hour for its retry
  t.equal(clock.pending(), 3, 'the schedule, one timer for the earliest delayed run, and the watchdog looking once a second');
  await host.stop();
  t.equal(clock.pending(), 0);
});

t.test('daylight saving on the injected clock, fire by fire: New York, London, Lord Howe, both transitions, both kinds', async (t) => {
  // One host per zone and transition, every job of that night registered at once.
  const groups = new Map<string, DstCase[]>();
  for (const c of DST_CASES) {
    const key = `${c.zone} ${c.transition}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  for (const [key, cases] of groups) {
    const from = Math.min(...cases.map((c) => Date.parse(c.from)));
    const until = Math.max(...cases.map((c) => Date.parse(c.fires.at(-1)!)));
    const { host, clock, of } = await startHost(t, { clock: createManualClock(from) });
    for (const [i, c] of cases.entries()) host.register({ name: `job-${i}`, schedule: c.expr, timezone: c.zone, handler: noop });
    await clock.set(until);
    cases.forEach((c, i) => {
      // The host runs on to the group's last fire: look at this case's window only.
      const window = (at: string): boolean => Date.parse(at) > Date.parse(c.from) && Date.parse(at) <= Date.parse(c.fires.at(-1)!);
      const got = of('run.queued')
        .filter((e) => e.data.job === `job-${i}` && window(e.at))
        .map((e) => e.at);
      t.same(got, c.fires, `${key}, ${c.kind} ${c.expr}: ${c.note}`);
    });
    await host.stop({ graceMs: 0 });
  }
});

t.test('an every-second job keeps firing every second through a fall-back, on the injected clock', async (t) => {
  // America/New_York, 2027-11-07 06:00Z: 01:59:59 EDT is followed by 01:00:00 EST.
  const start = Date.parse('2027-11-07T05:59:00Z');
  const { host, clock, of } = await startHost(t, { clock: createManualClock(start) });
  host.register({ name: 'pulse', schedule: '* * * * * *', timezone: 'America/New_York', handler: noop });
  await clock.set(start + 120_000);
  const want = Array.from({ length: 120 }, (_, i) => new Date(start + (i + 1) * 1000).toISOString());
  t.same(
    of('run.queued').map((e) => e.at),
    want,
    'one fire per real second, none missing, none doubled',
  );
  t.equal(of('run.succeeded').length, 120);
});

t.test('a timer a period or more late fires once, says up to when it stands for the schedule, and counts the next slot from then', async (t) => {
  const clock = createStallingClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const fired: Array<[string, string]> = [];
  const iso = (ms: number): string => new Date(ms).toISOString().slice(11, 19);
  const scheduler = new Scheduler({ clock, logger: silentLogger(), fire: (_job, at, through) => void fired.push([iso(at), iso(through)]) });
  t.teardown(() => scheduler.stop());
  scheduler.set('tick', cronSchedule('* * * * * *', 'UTC'));
  scheduler.start();
  await clock.advance(1000);
  // The event loop blocked for 5 s: the fire due at :02 comes at :07.
  clock.stall(5000);
  await clock.advance(1000);
  await clock.advance(1000);
  t.same(fired, [
    ['12:00:01', '12:00:01'],
    ['12:00:02', '12:00:07'],
    ['12:00:08', '12:00:08'],
  ]);
});
