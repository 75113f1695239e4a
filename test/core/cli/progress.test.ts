import t from 'tap';
import type { Run } from '../../../core/cli/client.js';
import type { ClientEvent } from '../../../core/cli/client-stream.js';
import { palette } from '../../../core/cli/format.js';
import { createRunReporter } from '../../../core/cli/progress.js';

const ev = (type: string, data: Record<string, unknown> = {}): ClientEvent => ({
  seq: 1,
  type,
  at: '2026-01-05T12:00:00.000Z',
  data: { job: 'j', runId: 'r', ...data },
});

const run = (over: Partial<Run>): Run => ({
  id: 'r',
  job: 'j',
  status: 'running',
  createdAt: '2026-01-05T12:00:00.000Z',
  startedAt: '2026-01-05T12:00:00.000Z',
  endedAt: null,
  durationMs: null,
  progress: { fraction: 0, text: null },
  attempts: [{ n: 1, error: null }],
  result: null,
  error: null,
  ...over,
});

function capture(): { write: (s: string) => void; text: () => string } {
  let text = '';
  return { write: (s) => void (text += s), text: () => text };
}

t.test('plain lines when not a terminal: one per change, no control codes', async (t) => {
  const out = capture();
  const r = createRunReporter(out, { live: false, color: palette(false) });
  r.event(ev('run.queued', { delayed: false, runAt: 'x' }));
  r.event(ev('run.started', { attempt: 1 }));
  r.event(ev('run.progress', { fraction: 0.5, text: 'half' }));
  r.event(ev('run.progress', { fraction: 0.501, text: 'half' }));
  r.run(run({ progress: { fraction: 0.5, text: 'half' } }));
  r.event(ev('run.retrying', { attempt: 1, delayMs: 1000, error: { code: 'TIMEOUT', message: 'slow' } }));
  r.event(ev('run.started', { attempt: 2 }));
  r.event(ev('run.started', { attempt: 2 }));
  r.event(ev('run.progress', { fraction: 0.5, text: 'half' }));
  r.notice('lost the event stream');
  r.event(ev('run.progress', { fraction: 1, text: null }));
  r.event(ev('run.succeeded', { durationMs: 5 }));
  r.end();
  t.equal(
    out.text(),
    [
      'started',
      'progress 50% half',
      'attempt 1 failed: TIMEOUT: slow; retrying in 1.0s',
      'started attempt 2',
      'progress 50% half',
      'lost the event stream',
      'progress 100%',
      '',
    ].join('\n'),
  );
});

t.test('a delayed run says until when; polled runs fill in what events would have shown', async (t) => {
  const out = capture();
  const r = createRunReporter(out, { live: false, color: palette(false) });
  r.event(ev('run.queued', { delayed: true, runAt: '2026-01-05T13:00:00.000Z' }));
  r.run(run({ status: 'queued', attempts: [] }));
  r.run(run({ attempts: [], progress: { fraction: 0, text: null } }));
  r.run(
    run({
      attempts: [
        { n: 1, error: null },
        { n: 2, error: null },
      ],
      progress: { fraction: 0.2, text: 'x' },
    }),
  );
  r.event(ev('run.started', {}));
  r.event(ev('run.progress', {}));
  t.equal(
    out.text(),
    ['queued until 2026-01-05T13:00:00.000Z', 'started', 'started attempt 2', 'progress 20% x', 'started attempt 3', 'progress 0%', ''].join('\n'),
  );
});

t.test('on a terminal: one live bar redrawn in place, lines printed above it', async (t) => {
  const out = capture();
  // 59 columns: a 14-cell bar (a quarter, at least 10)
  const r = createRunReporter(out, { live: true, color: palette(false), columns: () => 59 });
  r.event(ev('run.started', { attempt: 1 }));
  r.event(ev('run.progress', { fraction: 0.25, text: 'a' }));
  r.event(ev('run.progress', { fraction: 0.5, text: 'b' }));
  r.notice('note');
  r.end();
  r.end();
  const text = out.text();
  t.equal(
    text,
    'started\n' + '\r\x1b[2K[███░░░░░░░░░░░]  25% a' + '\r\x1b[2K[███████░░░░░░░]  50% b' + '\r\x1b[2Knote\n' + '\r\x1b[2K[███████░░░░░░░]  50% b' + '\n',
    'the bar stays on screen as the last state',
  );
});

t.test('colors follow the palette', async (t) => {
  const out = capture();
  const r = createRunReporter(out, { live: false, color: palette(true) });
  r.event(ev('run.started', { attempt: 1 }));
  r.event(ev('run.retrying', { attempt: 1, error: { code: 'E', message: 'm' } }));
  t.match(out.text(), '\x1b[36mstarted\x1b[39m');
  t.match(out.text(), '\x1b[33mattempt 1 failed: E: m; retrying\x1b[39m');
});

t.test('logged lines: one plain line each, above the live bar on a terminal, colored by level', async (t) => {
  const plain = capture();
  const p = createRunReporter(plain, { live: false, color: palette(false) });
  p.event(ev('run.started', { attempt: 1 }));
  p.log({ attempt: 1, i: 1, at: '2026-01-05T12:00:00.000Z', level: 'info', msg: 'read', fields: { rows: 3 } });
  p.log({ attempt: 1, i: 2, at: '2026-01-05T12:00:00.000Z', level: 'warn', msg: 'slow\ndisk' });
  p.end();
  t.equal(plain.text(), 'started\ninfo   read {"rows":3}\nwarn   slow disk\n');

  const tty = capture();
  const l = createRunReporter(tty, { live: true, color: palette(true), columns: () => 59 });
  l.event(ev('run.progress', { fraction: 0.5, text: 'b' }));
  l.log({ attempt: 1, i: 1, at: '2026-01-05T12:00:00.000Z', level: 'error', msg: 'x'.repeat(100) });
  l.end();
  const text = tty.text();
  t.match(text, /^\r\x1b\[2K\[.*50% b\r\x1b\[2K\x1b\[31merror\x1b\[39m {2}x+…\n\r\x1b\[2K\[/, 'the line above the bar, red, cut to the width');
});
