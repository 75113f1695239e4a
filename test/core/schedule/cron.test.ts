import t from 'tap';
import { assertTimezone } from '../../../core/contract/schedule-syntax.js';
import { cronSchedule, everySchedule, isWildcardCron } from '../../../core/schedule/cron.js';
import { DST_CASES } from './dst-cases.js';

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

t.test('wildcard or fixed-time: a second, minute or hour field that starts with * makes a wildcard job', async (t) => {
  for (const expr of ['*/30 * * * *', '0 * * * *', '*/10 * * * * *', '* * * * * *', '0 */2 * * *', '*/15 1 * * *', '0 0 * * * *', '@hourly', '0 ? * * *']) {
    t.ok(isWildcardCron(expr), `${expr}: wildcard`);
  }
  for (const expr of ['30 1 * * *', '0 30 1 * * *', '0 0,12 * * *', '15 1-3 * * *', '0 9 * * 1-5', '@daily', '@weekly']) {
    t.notOk(isWildcardCron(expr), `${expr}: fixed-time`);
  }
});

t.test('daylight saving, fire by fire, in New York, London and Lord Howe (a 30-minute shift)', async (t) => {
  for (const c of DST_CASES) {
    t.same(fires(c.expr, c.zone, c.from, c.fires.length), c.fires, `${c.zone} ${c.transition}, ${c.kind} ${c.expr}: ${c.note}`);
  }
});

t.test('an every-second job keeps firing every second through a fall-back', async (t) => {
  // America/New_York, 2027-11-07 06:00Z: 01:59:59 EDT is followed by 01:00:00 EST.
  const got = fires('* * * * * *', 'America/New_York', '2027-11-07T05:59:50Z', 20);
  const want = Array.from({ length: 20 }, (_, i) => iso(Date.parse('2027-11-07T05:59:51Z') + i * 1000));
  t.same(got, want);
  // and every 10 seconds, the same
  t.same(fires('*/10 * * * * *', 'America/New_York', '2027-11-07T05:59:35Z', 4), [
    '2027-11-07T05:59:40.000Z',
    '2027-11-07T05:59:50.000Z',
    '2027-11-07T06:00:00.000Z',
    '2027-11-07T06:00:10.000Z',
  ]);
});

t.test('DST: asked from inside a fold, the next fire follows the rule of the job kind', async (t) => {
  // 2026-11-01, America/New_York: 01:xx EDT (05:xxZ) then 01:xx EST (06:xxZ).
  // A fixed-time job asked during the second pass waits for the next day: it already ran.
  t.same(fires('30 1 * * *', 'America/New_York', '2026-11-01T06:20:00Z', 1), ['2026-11-02T06:30:00.000Z']);
  // A wildcard job asked late in the first pass still fires in the second pass.
  t.same(fires('*/15 1 * * *', 'America/New_York', '2026-11-01T05:50:00Z', 5), [
    '2026-11-01T06:00:00.000Z',
    '2026-11-01T06:15:00.000Z',
    '2026-11-01T06:30:00.000Z',
    '2026-11-01T06:45:00.000Z',
    '2026-11-02T06:00:00.000Z',
  ]);
  // A wildcard job whose next match is months away, inside a fold: its first pass comes first.
  t.same(fires('* 1 1 11 *', 'America/New_York', '2026-01-01T00:00:00Z', 1), ['2026-11-01T05:00:00.000Z']);
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
