import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Run } from '../../../core/contract/run.js';
import { AppendBuffer } from '../../../core/store/append-buffer.js';
import { appendRun, journalLine, segmentLine } from '../../../core/store/encode-run.js';
import { AppendFile } from '../../../core/store/files.js';
import { serializeRun } from '../../../core/store/serialize.js';
import { tempDir } from '../../helpers.js';

const base: Run = {
  id: '0mwt7yla80001ub5',
  job: 'a-job',
  status: 'succeeded',
  source: 'api',
  params: {},
  priority: 0,
  key: null,
  queue: 'default',
  createdAt: '2026-01-01T00:00:00.000Z',
  runAt: '2026-01-01T00:00:01.000Z',
  startedAt: '2026-01-01T00:00:01.000Z',
  endedAt: '2026-01-01T00:00:02.000Z',
  durationMs: 1000,
  progress: { fraction: 0, text: null },
  attempts: [{ n: 1, startedAt: '2026-01-01T00:00:01.000Z', endedAt: '2026-01-01T00:00:02.000Z', error: null }],
  maxAttempts: 1,
  result: null,
  error: null,
  retryOf: null,
  event: null,
  host: 'vm:1',
};

const runs: Run[] = [
  base,
  {
    ...base,
    status: 'failed',
    source: 'event',
    params: { s: 'quote " backslash \\ newline \n unicode ✓ \u2028 😀', n: [1, 2.5, -3e-7] },
    priority: -5,
    key: 'key "with" quotes\t é',
    progress: { fraction: 0.25, text: 'half "way" ✓' },
    attempts: [
      { n: 1, startedAt: base.runAt, endedAt: base.endedAt, error: { code: 'X', message: 'line1\nline2 "q" ✓' } },
      { n: 2, startedAt: base.runAt, endedAt: null, error: null },
    ],
    maxAttempts: 3,
    result: [1, 'two', { three: 3 }],
    error: { code: 'TIMEOUT', message: 'late' },
    retryOf: '0mwt7yla80001ub4',
    event: 'shipment.created',
    after: { runId: '0mwt7yla70001ub4', job: 'extract' },
    origin: 'http',
    host: 'hôte:2',
    traceId: 'ab',
    traceparent: '00-ab-cd-01',
  },
  { ...base, status: 'queued', startedAt: null, endedAt: null, durationMs: null, attempts: [], result: 'text', host: null },
  { ...base, status: 'running', endedAt: null, durationMs: null, attempts: [{ n: 1, startedAt: base.runAt, endedAt: null, error: null }], result: 0 },
  { ...base, job: 'jöb-non-ascii', traceparent: '00-ab-cd-01' },
];
const { host: _, ...hostless } = base;
runs.push(hostless);

t.test('a run encoded in place is the bytes of its serialized line, in a segment and in a journal', async (t) => {
  for (const run of runs) {
    const b = new AppendBuffer();
    t.ok(b.appendEncoded(4096, segmentLine, run));
    t.ok(b.appendEncoded(4096, journalLine, run));
    const taken = b.take();
    t.same(Buffer.concat(taken.buffers).toString(), `${serializeRun(run, '\n')}{"r":${serializeRun(run, '}\n')}`);
    taken.release();
  }
});

t.test('a line that does not fit where it is encoded is not kept, and goes in as a string', async (t) => {
  const b = new AppendBuffer();
  b.append('x'.repeat(80_000)); // the rest of the chunk is ~176 KB: less than the line below
  const big: Run = { ...base, params: { s: 'y'.repeat(300_000) } };
  t.equal(b.appendEncoded(4096, segmentLine, big), false);
  t.equal(b.length, 80_000);
  t.ok(b.appendEncoded(4096, segmentLine, base));
  const taken = b.take();
  t.equal(Buffer.concat(taken.buffers).toString(), `${'x'.repeat(80_000)}${serializeRun(base, '\n')}`);
  taken.release();
});

t.test('appendRun writes each run as its serialized line, the big ones too', async (t) => {
  const file = new AppendFile(path.join(tempDir(t), 'segment.ndjson'), { fsync: false });
  await file.open();
  const all = [...runs, { ...base, result: { s: 'z'.repeat(500_000) } }, base];
  for (const run of all) appendRun(file, run, false);
  appendRun(file, runs[1]!, true);
  await file.commit();
  await file.close();
  const want = all.map((r) => serializeRun(r, '\n')).join('') + `{"r":${serializeRun(runs[1]!, '}\n')}`;
  t.equal(readFileSync(file.file, 'utf8'), want);
});
