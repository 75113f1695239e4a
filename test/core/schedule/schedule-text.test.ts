import t from 'tap';
import { scheduleText } from '../../../core/schedule/schedule-text.js';
import { startHost } from '../../helpers.js';

t.test('cron in words through cronstrue, 24-hour clock', async (t) => {
  t.equal(scheduleText({ kind: 'cron', expr: '0 7 * * *' }), 'At 07:00');
  t.equal(scheduleText({ kind: 'cron', expr: '*/15 * * * *' }), 'Every 15 minutes');
  t.equal(scheduleText({ kind: 'cron', expr: '*/5 * * * * *' }), 'Every 5 seconds', 'six fields: seconds first');
  t.equal(scheduleText({ kind: 'cron', expr: '0 6 * * MON#2' }), 'At 06:00, on the second Monday of the month');
});

t.test('an expression cronstrue cannot read is shown as written', async (t) => {
  t.equal(scheduleText({ kind: 'cron', expr: 'not a cron' }), 'not a cron');
});

t.test('{ every } spelled out in the largest whole unit', async (t) => {
  t.equal(scheduleText({ kind: 'every', ms: 900_000, label: '15m' }), 'Every 15 minutes');
  t.equal(scheduleText({ kind: 'every', ms: 3_600_000, label: '1h' }), 'Every hour');
  t.equal(scheduleText({ kind: 'every', ms: 172_800_000, label: '2d' }), 'Every 2 days');
  t.equal(scheduleText({ kind: 'every', ms: 90_000, label: '90s' }), 'Every 90 seconds');
  t.equal(scheduleText({ kind: 'every', ms: 1500, label: '1500ms' }), 'Every 1500ms');
  t.equal(scheduleText(null), null);
});

t.test('the job view carries it, computed once per resolved schedule', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'digest', schedule: '0 7 * * *', handler: () => 1 });
  host.register({ name: 'poll', schedule: { every: '15m' }, handler: () => 1 });
  host.register({ name: 'manual', handler: () => 1 });
  t.match(host.job('digest'), { schedule: '0 7 * * *', scheduleText: 'At 07:00' });
  t.match(host.job('poll'), { schedule: 'every 15m', scheduleText: 'Every 15 minutes' });
  t.match(host.job('manual'), { schedule: null, scheduleText: null });
});
