import t from 'tap';
import { assertTimezone } from '../../../core/contract/schedule-syntax.js';
import { cronSchedule, everySchedule } from '../../../core/schedule/cron.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const fires = (expr: string, tz: string, from: string, n: number): Array<string | null> => {
  const s = cronSchedule(expr, tz);
  const out: Array<string | null> = [];
  let at = Date.parse(from);
  for (let i = 0; i < n; i++) {
    const next = s.next(at);
    out.push(iso(next));
    if (next === null) break;
    at = next;
  }
  return out;
};

t.test('5 fields, and 6 with seconds first', async (t) => {
  t.same(fires('*/15 * * * *', 'UTC', '2026-01-01T00:07:00Z', 3), ['2026-01-01T00:15:00.000Z', '2026-01-01T00:30:00.000Z', '2026-01-01T00:45:00.000Z']);
  t.same(fires('*/20 * * * * *', 'UTC', '2026-01-01T00:00:00Z', 3), ['2026-01-01T00:00:20.000Z', '2026-01-01T00:00:40.000Z', '2026-01-01T00:01:00.000Z']);
  // strictly after: a time that matches is not its own next
  t.same(fires('0 * * * *', 'UTC', '2026-01-01T05:00:00Z', 1), ['2026-01-01T06:00:00.000Z']);
});

t.test('day-of-month OR day-of-week when both are restricted', async (t) => {
  // the 1st of the month, or any Monday; 2026-11-23 is a Monday
  t.same(
    fires('0 0 1 * 1', 'UTC', '2026-11-20T00:00:00Z', 4).map((d) => d?.slice(0, 10)),
    ['2026-11-23', '2026-11-30', '2026-12-01', '2026-12-07'],
  );
});

t.test('0 and 7 are both Sunday', async (t) => {
  t.same(fires('0 9 * * 0', 'UTC', '2026-11-20T00:00:00Z', 2), fires('0 9 * * 7', 'UTC', '2026-11-20T00:00:00Z', 2));
  t.equal(fires('0 9 * * 7', 'UTC', '2026-11-20T00:00:00Z', 1)[0], '2026-11-22T09:00:00.000Z');
});

t.test('timezone: fires on the zone wall clock', async (t) => {
  // 09:00 in Tokyo is 00:00Z; asked at exactly that instant, the next is the following day
  t.same(fires('0 9 * * *', 'Asia/Tokyo', '2026-06-01T00:00:00Z', 1), ['2026-06-02T00:00:00.000Z']);
  t.same(fires('30 8 * * *', 'Europe/Berlin', '2026-07-01T00:00:00Z', 1), ['2026-07-01T06:30:00.000Z']);
});

t.test('DST gap: a fire inside the skipped hour runs once, at the jump', async (t) => {
  // America/New_York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z).
  t.same(fires('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 3), [
    '2026-03-08T07:00:00.000Z', // 02:30 does not exist: runs at 03:00 EDT
    '2026-03-09T06:30:00.000Z',
    '2026-03-10T06:30:00.000Z',
  ]);
  // several fire times inside the gap collapse into one run at the jump
  t.same(fires('*/20 2 * * *', 'America/New_York', '2026-03-08T06:00:00Z', 2), ['2026-03-08T07:00:00.000Z', '2026-03-09T06:00:00.000Z']);
  // fires around the gap are untouched
  t.same(fires('0 * * * *', 'America/New_York', '2026-03-08T05:30:00Z', 3), [
    '2026-03-08T06:00:00.000Z',
    '2026-03-08T07:00:00.000Z',
    '2026-03-08T08:00:00.000Z',
  ]);
});

t.test('DST fold: a fire inside the repeated hour runs once, not twice', async (t) => {
  // America/New_York falls back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:xx happens twice.
  t.same(fires('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  t.same(fires('*/15 1 * * *', 'America/New_York', '2026-11-01T04:50:00Z', 5), [
    '2026-11-01T05:00:00.000Z',
    '2026-11-01T05:15:00.000Z',
    '2026-11-01T05:30:00.000Z',
    '2026-11-01T05:45:00.000Z',
    '2026-11-02T06:00:00.000Z',
  ]);
  // asked from inside the second pass, the next fire is after the fold
  t.same(fires('*/15 1 * * *', 'America/New_York', '2026-11-01T06:20:00Z', 1), ['2026-11-02T06:00:00.000Z']);
  // an hourly job still fires every real hour across the fold (01:00 EDT, 01:00 EST is the same wall time: once)
  t.same(fires('0 * * * *', 'America/New_York', '2026-11-01T04:30:00Z', 3), [
    '2026-11-01T05:00:00.000Z',
    '2026-11-01T07:00:00.000Z',
    '2026-11-01T08:00:00.000Z',
  ]);
});

t.test('invalid expressions throw INVALID_CRON naming the field and the expression', async (t) => {
  t.throws(() => cronSchedule('61 * * * *', 'UTC'), { code: 'INVALID_CRON', message: /^schedule: invalid cron "61 \* \* \* \*"/ });
  t.throws(() => cronSchedule('* * * *', 'UTC'), { code: 'INVALID_CRON', message: /expected 5 or 6 fields, got 4/ });
  t.throws(() => cronSchedule('* * * * * * *', 'UTC'), { code: 'INVALID_CRON', message: /got 7/ });
  t.throws(() => cronSchedule('0 0 30 2 *', 'UTC'), { code: 'INVALID_CRON', message: /never fires/ });
  t.throws(() => cronSchedule('x y z a b', 'UTC'), { code: 'INVALID_CRON' });
  t.throws(() => cronSchedule('0 * * * *', 'Mars/Olympus'), { code: 'INVALID_TIMEZONE' });
  t.throws(() => assertTimezone('Nowhere/City'), { code: 'INVALID_TIMEZONE', message: /Nowhere\/City/ });
  t.doesNotThrow(() => assertTimezone('America/New_York'));
});

t.test('every: multiples of the interval since the epoch', async (t) => {
  const s = everySchedule(15 * 60_000, '15m');
  t.equal(s.label, 'every 15m');
  t.equal(iso(s.next(Date.parse('2026-01-01T00:07:00Z'))), '2026-01-01T00:15:00.000Z');
  t.equal(iso(s.next(Date.parse('2026-01-01T00:15:00Z'))), '2026-01-01T00:30:00.000Z');
});
