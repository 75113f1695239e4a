import t from 'tap';
import { formatDuration, parseDuration } from '../../../core/contract/duration.js';

t.test('parses every unit and plain milliseconds', async (t) => {
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('30s'), 30_000);
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration('2h'), 7_200_000);
  t.equal(parseDuration('1d'), 86_400_000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration(1234), 1234);
  t.equal(parseDuration(' 10 s '), 10_000);
  t.equal(parseDuration('0'), 0, 'zero needs no unit ("throttle": "0")');
  t.equal(parseDuration('0s'), 0);
});

t.test('rejects what is not a duration with INVALID_DURATION naming the field', async (t) => {
  for (const bad of ['5 minutes', '-1s', '', 'ms', '5', '0x', -5, Number.NaN, Infinity, null, {}, '1w']) {
    t.throws(() => parseDuration(bad, 'retry.delay'), { code: 'INVALID_DURATION', message: /^retry\.delay: / }, String(bad));
  }
});

t.test('rejects durations over 100 years, which would overflow a Date', async (t) => {
  t.equal(parseDuration('36500d'), 36_500 * 86_400_000);
  t.throws(() => parseDuration('99999999999d', 'delay'), { code: 'INVALID_DURATION', message: /^delay: .*longer than the limit of 36500d/ });
  t.throws(() => parseDuration(1e20, 'cooldown'), { code: 'INVALID_DURATION', message: /^cooldown: / });
});

t.test('formats compactly', async (t) => {
  t.equal(formatDuration(999), '999ms');
  t.equal(formatDuration(90_000), '1m30s');
  t.equal(formatDuration(86_400_000 + 3_600_000), '1d1h');
});
