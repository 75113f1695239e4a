import t from 'tap';
import type { Run } from '../../../core/contract/run.js';
import { buildNotification, renderTemplate, titleCase } from '../../../core/engine/notify.js';

const run = (patch: Partial<Run> = {}): Run => ({
  id: 'r1',
  job: 'cleanup-temp-files',
  status: 'succeeded',
  source: 'api',
  params: { dir: '/tmp' },
  priority: 0,
  key: null,
  queue: 'default',
  createdAt: '2026-01-01T00:00:00.000Z',
  runAt: '2026-01-01T00:00:00.000Z',
  startedAt: '2026-01-01T00:00:00.000Z',
  endedAt: '2026-01-01T00:00:01.500Z',
  durationMs: 1500,
  progress: { fraction: 1, text: null },
  attempts: [{ n: 1, startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:01.500Z', error: null }],
  maxAttempts: 1,
  result: { count: 3, nested: { deep: 'yes' } },
  error: null,
  retryOf: null,
  event: null,
  ...patch,
});
const at = '2026-01-01T00:00:02.000Z';
const failed = run({ status: 'failed', result: null, error: { code: 'EACCES', message: 'permission denied' } });

const sub = (r: Run) => ({ job: r.job, run: r });

t.test('templates: placeholders, dotted paths, unknown paths empty', async (t) => {
  t.equal(
    renderTemplate('{{job}} {{runId}} {{ status }} {{durationMs}}ms {{result.count}} {{result.nested.deep}} [{{result.missing}}] [{{nope.x}}]', {
      job: 'j',
      runId: 'r',
      status: 'succeeded',
      durationMs: 12,
      result: { count: 3, nested: { deep: 'yes' } },
    }),
    'j r succeeded 12ms 3 yes [] []',
  );
  t.equal(renderTemplate('{{result}}', { result: { a: 1 } }), '{"a":1}');
  t.equal(titleCase('cleanup-temp-files'), 'Cleanup Temp Files');
});

t.test('default title and message when the custom flags are off', async (t) => {
  const ok = buildNotification({ title: 'Temp files cleaned' }, sub(run()), 'succeeded', at, 'n1')!;
  t.equal(ok.title, 'Temp files cleaned Completed');
  t.equal(ok.message, 'Job cleanup-temp-files run r1 completed successfully: {"count":3,"nested":{"deep":"yes"}}');
  const bad = buildNotification({ title: 'Temp files cleaned' }, sub(failed), 'failed', at, 'n2')!;
  t.equal(bad.title, 'Temp files cleaned Failed');
  t.equal(bad.message, 'Job cleanup-temp-files run r1 failed: permission denied');
  // no title at all: the job name, title-cased
  t.equal(buildNotification({}, sub(run()), 'succeeded', at, 'n3')!.title, 'Cleanup Temp Files Completed');
  // a message template without customMessage fills the <result> part of the default sentence
  t.equal(
    buildNotification({ message: 'Removed {{result.count}} files' }, sub(run()), 'succeeded', at, 'n4')!.message,
    'Job cleanup-temp-files run r1 completed successfully: Removed 3 files',
  );
  // A handler that returned nothing: the sentence ends there, no bare colon.
  t.equal(buildNotification({}, sub({ ...run(), result: null }), 'succeeded', at, 'n5')!.message, 'Job cleanup-temp-files run r1 completed successfully');
  t.equal(
    buildNotification({ on: ['failed', 'recovered'] }, sub({ ...run(), result: null }), 'recovered', at, 'n6', { streak: 2 })!.message,
    'Job cleanup-temp-files run r1 succeeded after 2 failed runs',
  );
});

t.test('customTitle and customMessage use the templates as rendered', async (t) => {
  const spec = { title: '{{job}}: cleaned', message: 'Removed {{result.count}} files ({{error}})', customTitle: true, customMessage: true };
  const n = buildNotification(spec, sub(run()), 'succeeded', at, 'n1')!;
  t.equal(n.title, 'cleanup-temp-files: cleaned');
  t.equal(n.message, 'Removed 3 files ()');
  const f = buildNotification(spec, sub(failed), 'failed', at, 'n2')!;
  t.equal(f.title, 'cleanup-temp-files: cleaned');
  t.equal(f.message, 'Removed  files (permission denied)');
  t.equal(buildNotification({ customMessage: true }, sub(failed), 'failed', at, 'n3')!.message, 'permission denied');
});

t.test('priority vs failurePriority, tags, and the on filter', async (t) => {
  const spec = { priority: 'low' as const, failurePriority: 'critical' as const, tags: ['maintenance'] };
  t.match(buildNotification(spec, sub(run()), 'succeeded', at, 'n1'), {
    priority: 'low',
    tags: ['maintenance'],
    status: 'succeeded',
    job: 'cleanup-temp-files',
    runId: 'r1',
    at,
    id: 'n1',
  });
  t.match(buildNotification(spec, sub(failed), 'failed', at, 'n2'), { priority: 'critical' });
  t.match(buildNotification({}, sub(run()), 'succeeded', at, 'n3'), { priority: 'medium', tags: [] });
  t.match(buildNotification({}, sub(failed), 'failed', at, 'n4'), { priority: 'high' });
  t.equal(buildNotification({ on: ['failed'] }, sub(run()), 'succeeded', at, 'n5'), null);
  t.equal(buildNotification({}, sub(run()), 'retrying', at, 'n6'), null, 'retrying is opt-in');
  t.match(buildNotification({ on: ['retrying'] }, sub(failed), 'retrying', at, 'n7'), { title: 'Cleanup Temp Files Retrying', priority: 'high' });
});
