import t from 'tap';
import type { Job } from '../../../core/cli/client.js';
import type { ClientEvent } from '../../../core/cli/client-stream.js';
import {
  clockTime,
  formatEvent,
  formatJobs,
  formatLogEvent,
  formatLogLine,
  formatMs,
  palette,
  percent,
  preview,
  progressBar,
  progressLine,
  relativeTime,
  summarize,
  table,
  truncate,
  useColor,
  visibleLength,
} from '../../../core/cli/format.js';

const NOW = Date.parse('2026-01-05T12:00:00.000Z');
const ESC = '\x1b[';

t.test('colors: only on a terminal, never with NO_COLOR, forced with FORCE_COLOR', async (t) => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  t.equal(useColor(tty, {}), true);
  t.equal(useColor(pipe, {}), false, 'not a terminal');
  t.equal(useColor({}, {}), false, 'isTTY unset');
  t.equal(useColor(tty, { NO_COLOR: '1' }), false, 'NO_COLOR');
  t.equal(useColor(tty, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count');
  t.equal(useColor(tty, { NO_COLOR: '1', FORCE_COLOR: '1' }), false, 'NO_COLOR wins');
  t.equal(useColor(pipe, { FORCE_COLOR: '1' }), true);
  t.equal(useColor(tty, { FORCE_COLOR: '0' }), false);
  t.equal(useColor(tty, { TERM: 'dumb' }), false);

  const on = palette(true);
  const off = palette(false);
  t.equal(on.red('x'), `${ESC}31mx${ESC}39m`);
  t.equal(on.bold('x'), `${ESC}1mx${ESC}22m`);
  for (const name of ['bold', 'dim', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'gray'] as const) t.equal(off[name]('x'), 'x', name);
  t.equal(visibleLength(on.green('abc')), 3);
});

t.test('text helpers', async (t) => {
  t.equal(truncate('abcdef', 4), 'abc…');
  t.equal(truncate('abc', 3), 'abc');
  t.equal(truncate('abc', 0), '');
  t.equal(preview({ a: 1 }), '{"a":1}');
  t.equal(preview('text'), 'text');
  t.equal(preview(undefined), 'undefined');
  const circular: Record<string, unknown> = {};
  circular['self'] = circular;
  t.equal(preview(circular), '[object Object]');
  t.equal(preview('x'.repeat(100), 10), `${'x'.repeat(9)}…`);

  t.equal(formatMs(850), '850ms');
  t.equal(formatMs(1234), '1.2s');
  t.equal(formatMs(12_345), '12s');
  t.equal(formatMs(90_000), '1m30s');
  t.equal(formatMs(3_600_000 + 5_000), '1h', 'two contiguous units at most');
  t.equal(formatMs(93_784_000), '1d2h');
  t.equal(formatMs(-90_000), '-1m30s');
  t.equal(formatMs(Number.NaN), '-');

  t.equal(relativeTime('2026-01-05T12:05:00.000Z', NOW), 'in 5m');
  t.equal(relativeTime('2026-01-05T09:00:00.000Z', NOW), '3h ago');
  t.equal(relativeTime('2026-01-05T12:00:00.400Z', NOW), 'now');
  t.equal(relativeTime('soon', NOW), 'soon');

  const at = new Date(2026, 0, 5, 9, 4, 5, 7).toISOString();
  t.equal(clockTime(at), '09:04:05.007', 'local time');
  t.equal(clockTime('nope'), 'nope');
});

t.test('table: padded columns, numbers right-aligned, colors not counted', async (t) => {
  const c = palette(true);
  const text = table(
    ['NAME', 'N'],
    [
      [c.red('a'), '5'],
      ['long-name', '10'],
    ],
    { right: new Set([1]) },
  );
  const lines = text.split('\n').map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''));
  t.same(lines, ['NAME        N', 'a           5', 'long-name  10']);
  t.equal(table(['A'], []), 'A');
});

const job = (over: Partial<Job>): Job => ({
  name: 'job',
  description: '',
  schedule: null,
  enabled: true,
  pause: { job: false, queue: false },
  queue: 'default',
  nextRun: null,
  lastRun: null,
  counts: { succeeded: 0, failed: 0, canceled: 0, queued: 0, running: 0 },
  ...over,
});

t.test('the jobs table', async (t) => {
  t.equal(formatJobs([], NOW), 'no jobs registered');
  const jobs = [
    job({
      name: 'zeta',
      schedule: '0 * * * *',
      nextRun: '2026-01-05T13:00:00.000Z',
      lastRun: { runId: 'r1', status: 'failed', at: '2026-01-05T11:58:00.000Z' },
      counts: { succeeded: 3, failed: 1, canceled: 0, queued: 2, running: 1 },
    }),
    job({ name: 'alpha', enabled: false, schedule: 'every 5m', nextRun: '2026-01-05T12:05:00.000Z' }),
    job({ name: 'held', pause: { job: true, queue: false } }),
    job({ name: 'low-1', queue: 'low', pause: { job: false, queue: true } }),
    job({ name: 'low-2', queue: 'low', pause: { job: true, queue: true } }),
  ];
  const plain = formatJobs(jobs, NOW);
  const [header, first, held, low1, low2, last] = plain.split('\n');
  t.match(header, /^NAME\s+SCHEDULE\s+ENABLED\s+PAUSED\s+NEXT RUN\s+LAST RUN\s+OK\s+FAILED\s+CANCELED\s+RUNNING\s+QUEUED$/);
  t.match(first, /^alpha\s+every 5m\s+no\s+-\s+-\s+-\s+0\s+0\s+0\s+0\s+0$/, 'sorted by name; a disabled job has no next run; not paused');
  t.match(held, /^held\s+-\s+yes\s+yes\s+-\s+-\s+0\s+0\s+0\s+0\s+0$/, "the job's own pause");
  t.match(low1, /^low-1\s+-\s+yes\s+queue low\s+-\s+-\s+0/, 'held by its queue, named as `jobhost resume --queue` takes it');
  t.match(low2, /^low-2\s+-\s+yes\s+yes, queue low\s+-\s+-\s+0/, 'both');
  t.match(last, /^zeta\s+0 \* \* \* \*\s+yes\s+-\s+in 1h\s+failed 2m ago\s+3\s+1\s+0\s+1\s+2$/);
  t.equal(low1!.indexOf('queue low'), header!.indexOf('PAUSED'), 'under its header');
  t.equal(last!.indexOf('in 1h'), header!.indexOf('NEXT RUN'), 'the widest PAUSED cell pads the column');
  t.notMatch(plain, /\x1b/, 'no color codes by default');

  const colored = formatJobs(jobs, NOW, palette(true));
  t.match(colored, `${ESC}31mfailed${ESC}39m 2m ago`, 'the last status in its color');
  t.match(colored, `${ESC}33mno${ESC}39m`);
  t.match(colored, `${ESC}33myes, queue low${ESC}39m`, 'paused in yellow, like disabled');
});

t.test('the progress bar', async (t) => {
  t.equal(progressBar(0, 10), '[░░░░░░░░░░]   0%');
  t.equal(progressBar(0.5, 10), '[█████░░░░░]  50%');
  t.equal(progressBar(1, 10), '[██████████] 100%');
  t.equal(progressBar(2, 4), '[████] 100%', 'clamped above');
  t.equal(progressBar(-1, 4), '[░░░░]   0%', 'clamped below');
  t.equal(progressBar(Number.NaN, 4), '[░░░░]   0%');
  t.equal(percent(0.996), '99%', 'never 100% before the end');
  t.equal(percent(0.456), '46%');
  t.equal(progressLine(0.25, null, 40), '[██░░░░░░░░]  25%', 'a quarter of the width, at least 10');
  t.equal(progressLine(0.25, 'copying files', 40), '[██░░░░░░░░]  25% copying files');
  const long = progressLine(0.5, 'x'.repeat(200), 60);
  t.equal(long.length, 60, 'cut to the width');
  t.ok(long.endsWith('x…'));
  t.equal(progressBar(0.5).length, 31, 'default width 24');
});

const ev = (type: string, data: Record<string, unknown>): ClientEvent => ({
  seq: 1,
  type,
  at: new Date(2026, 0, 5, 8, 30, 1, 250).toISOString(),
  data: { job: 'report', ...data },
});

t.test('one summary per event type', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['host.started', { job: null, pid: 42, jobs: 3 }, 'pid 42, 3 jobs'],
    ['host.stopping', { job: null, reason: 'SIGTERM', graceMs: 30_000 }, 'SIGTERM, grace 30s'],
    ['host.stopped', { job: null, reason: 'SIGTERM' }, 'SIGTERM'],
    ['job.registered', { file: 'plugins/report.ts', schedule: '0 2 * * *', enabled: true }, 'plugins/report.ts, schedule 0 2 * * *'],
    [
      'job.updated',
      { file: 'plugins/report.ts', schedule: null, enabled: false, changed: ['schedule', 'enabled'] },
      'plugins/report.ts, schedule none, disabled, changed schedule, enabled',
    ],
    ['job.removed', { file: 'plugins/report.ts' }, 'plugins/report.ts'],
    ['job.enabled', {}, ''],
    ['run.queued', { runId: 'r', source: 'http', queue: 'default', delayed: false, runAt: 'x', key: null }, 'http, queue default'],
    [
      'run.queued',
      { runId: 'r', source: 'schedule', queue: 'low', delayed: true, runAt: '2026-01-05T09:00:00Z', key: 'k' },
      'schedule, queue low, until 2026-01-05T09:00:00Z, key k',
    ],
    ['run.started', { runId: 'r', attempt: 2 }, 'attempt 2'],
    ['run.progress', { runId: 'r', fraction: 0.5, text: 'half' }, '50% half'],
    ['run.progress', { runId: 'r', fraction: 0.25, text: null }, '25%'],
    [
      'run.retrying',
      { runId: 'r', attempt: 1, nextAttempt: 2, delayMs: 1000, error: { code: 'TIMEOUT', message: 'slow' } },
      'attempt 1 failed (TIMEOUT: slow); attempt 2 in 1.0s',
    ],
    ['run.succeeded', { runId: 'r', durationMs: 1500, result: { count: 3 } }, '1.5s, result {"count":3}'],
    ['run.succeeded', { runId: 'r', durationMs: 5, result: null }, '5ms'],
    ['run.failed', { runId: 'r', attempt: 3, error: { code: 'HANDLER_ERROR', message: 'boom' } }, 'HANDLER_ERROR: boom, attempt 3'],
    ['run.failed', { runId: 'r', error: 'odd' }, 'odd'],
    ['run.canceled', { runId: 'r', reason: 'api' }, 'api'],
    ['run.skipped', { reason: 'overlap', detail: 'run x is running' }, 'overlap, run x is running'],
    ['notification', { runId: 'r', priority: 'high', title: 'Report Failed', message: 'it broke' }, '[high] Report Failed — it broke'],
    ['notification.delivered', { runId: 'r', destination: 'ops-hook', attempts: 1 }, 'to ops-hook after 1 attempt'],
    [
      'notification.failed',
      { runId: 'r', destination: 'ops-hook', attempts: 3, error: { code: 'RECEIVER_REJECTED', message: 'the receiver answered 400' } },
      'to ops-hook dead after 3 attempts: RECEIVER_REJECTED: the receiver answered 400',
    ],
    ['plugin.error', { file: 'plugins/x.ts', code: 'INVALID_CRON', message: 'schedule: bad' }, 'plugins/x.ts: INVALID_CRON: schedule: bad'],
    ['config.reloaded', { job: null, changed: ['concurrency'], restartRequired: ['server'] }, 'changed concurrency, restart required for server'],
    ['config.reloaded', { job: null, changed: [], restartRequired: [] }, 'no change'],
    ['config.error', { job: null, code: 'CONFIG_INVALID', message: 'concurrency: bad' }, 'CONFIG_INVALID: concurrency: bad'],
    ['shipment.created', { orderId: 'o-1' }, '{"orderId":"o-1"}'],
    ['custom.empty', {}, ''],
  ];
  for (const [type, data, expected] of cases) t.equal(summarize(ev(type, data)), expected, type);
  t.equal(summarize(ev('run.started', { runId: 'r', attempt: 'x' })), 'attempt ?', 'a field of the wrong type is not trusted');
});

t.test('event lines: time, type, job, run id, summary; colored by outcome', async (t) => {
  const line = formatEvent(ev('run.succeeded', { runId: '0mwt91n1z00019ws', durationMs: 12, result: 'ok' }));
  t.equal(line, '08:30:01.250  run.succeeded    report                0mwt91n1z00019ws  12ms, result ok');
  const host = formatEvent(ev('host.stopped', { job: null, reason: 'SIGINT' }));
  t.equal(host, '08:30:01.250  host.stopped     -                     -                 SIGINT');
  const other = formatEvent(ev('run.succeeded', { runId: '0mwt91n1z00019ws', durationMs: 12, result: 'ok', host: 'web-2' }));
  t.equal(other, '08:30:01.250  run.succeeded    report                0mwt91n1z00019ws  [web-2] 12ms, result ok', "another host's event names it");
  t.equal(summarize(ev('shipment.created', { orderId: 'o-1', host: 'web-2' })), '{"orderId":"o-1"}', 'host is not part of the summary');
  const cut = formatEvent(ev('run.failed', { runId: 'r', error: { code: 'E', message: 'x'.repeat(200) } }), palette(false), 100);
  t.equal(cut.length, 100, 'fits the terminal');
  const multiline = formatEvent(ev('run.failed', { runId: 'r', error: { code: 'E', message: 'a\n  b' } }));
  t.ok(multiline.endsWith('E: a b'), 'one line, always');
  const c = palette(true);
  t.match(formatEvent(ev('run.failed', { runId: 'r', error: { code: 'E', message: 'm' } }), c), `${ESC}31mrun.failed`);
  t.match(formatEvent(ev('run.succeeded', { runId: 'r' }), c), `${ESC}32mrun.succeeded`);
  t.match(formatEvent(ev('run.retrying', { runId: 'r' }), c), `${ESC}33mrun.retrying`);
  t.match(formatEvent(ev('run.started', { runId: 'r' }), c), `${ESC}36mrun.started`);
  t.match(formatEvent(ev('run.progress', { runId: 'r' }), c), `${ESC}2mrun.progress`);
  t.match(formatEvent(ev('run.queued', { runId: 'r' }), c), `${ESC}34mrun.queued`);
  t.match(formatEvent(ev('job.registered', {}), c), `${ESC}35mjob.registered`);
  t.match(formatEvent(ev('plugin.error', {}), c), `${ESC}31mplugin.error`);
  t.match(formatEvent(ev('host.stopped', {}), c), /\x1b\[2m08:30:01\.250\x1b\[22m {2}host\.stopped/, 'no color for a plain host event');
});

t.test('log lines: level, message and fields on one line; tail --logs gives each its own event line', async (t) => {
  const at = '2026-01-05T08:30:02.500Z';
  t.equal(formatLogLine({ attempt: 1, i: 1, at, level: 'info', msg: 'read', fields: { rows: 3 } }), 'info   read {"rows":3}');
  t.equal(formatLogLine({ attempt: 1, i: 2, at, level: 'warn', msg: 'a\n  b' }), 'warn   a b', 'one line, always');
  t.equal(formatLogLine({ attempt: 1, i: 3, at, level: 'debug', msg: 'x'.repeat(50) }, palette(false), 30).length, 30, 'fits');
  t.match(formatLogLine({ attempt: 1, i: 4, at, level: 'error', msg: 'm' }, palette(true)), `${ESC}31merror`);
  const lines = formatLogEvent(ev('run.log', { runId: '0mwt91n1z00019ws' }), [
    { attempt: 1, i: 1, at, level: 'info', msg: 'one' },
    { attempt: 1, i: 2, at, level: 'info', msg: 'two' },
  ]);
  t.same(lines, [
    `${clockTime(at)}  run.log          report                0mwt91n1z00019ws  info   one`,
    `${clockTime(at)}  run.log          report                0mwt91n1z00019ws  info   two`,
  ]);
});
