import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import t from 'tap';
import type { JobContext } from '../../core/contract/plugin.js';
import cleanup from '../../plugins/cleanup-temp-files.js';
import digest from '../../plugins/daily-digest.js';
import shipment from '../../plugins/shipment-follow-up.js';
import health from '../../plugins/url-health-check.js';
import { startHost, tempDir, until } from '../helpers.js';

t.test('cleanup-temp-files deletes files older than the cutoff and notifies with the count', async (t) => {
  const scratch = tempDir(t);
  const old = Date.now() / 1000 - 10 * 86_400;
  for (const name of ['a.log', 'b.log']) {
    writeFileSync(path.join(scratch, name), 'x'.repeat(10));
    utimesSync(path.join(scratch, name), old, old);
  }
  writeFileSync(path.join(scratch, 'fresh.log'), 'keep');
  mkdirSync(path.join(scratch, 'sub'));
  const { host, of } = await startHost(t, { plugins: [cleanup] });
  const run = await host.wait((await host.trigger('cleanup-temp-files', { params: { dir: scratch, olderThanDays: 7 } })).runId);
  t.match(run, { status: 'succeeded', result: { count: 2, bytes: 20 }, progress: { fraction: 1 } });
  t.same(readdirSync(scratch).sort(), ['fresh.log', 'sub']);
  t.match(of('notification')[0]!.data, { title: 'Temp files cleaned', message: `Removed 2 files (20 bytes) from ${scratch}`, tags: ['maintenance'] });
  t.equal(host.job('cleanup-temp-files')!.schedule, '0 */6 * * *');
});

t.test('url-health-check: succeeds on the expected status, retries and fails with a notification otherwise', async (t) => {
  let status = 200;
  const server = createServer((_req, res) => {
    res.statusCode = status;
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
  const { host, clock, of } = await startHost(t, { plugins: [health] });
  const ok = await host.wait((await host.trigger('url-health-check', { params: { url } })).runId);
  t.match(ok, { status: 'succeeded', result: { url, status: 200 } });
  status = 503;
  const { runId } = await host.trigger('url-health-check', { params: { url } });
  // Each attempt is a real request; the backoff between them runs on the test clock.
  await until(
    async () => {
      await clock.advance(30_000);
      return (await host.run(runId))!.status === 'failed';
    },
    10_000,
    'three failed attempts',
  );
  const failed = await host.wait(runId);
  t.match(failed, { status: 'failed', attempts: [{}, {}, {}], error: { code: 'UNEXPECTED_STATUS', message: /answered 503, expected 200/ } });
  t.match(of('notification').at(-1)!.data, {
    title: 'Health check Failed',
    priority: 'high',
    message: new RegExp(`^Job url-health-check run ${runId} failed: `),
  });
  t.equal(of('notification').length, 1, 'no notification on success');
});

t.test('daily-digest summarizes a day of history from ctx.host', async (t) => {
  const { host, clock } = await startHost(t, { plugins: [digest] });
  host.register({ name: 'ok-job', handler: () => 1 });
  host.register({
    name: 'bad-job',
    handler: () => {
      throw new Error('nope');
    },
  });
  for (let i = 0; i < 3; i++) await host.wait((await host.trigger('ok-job')).runId);
  await host.wait((await host.trigger('bad-job')).runId);
  const day = new Date(clock.now()).toISOString().slice(0, 10);
  const run = await host.wait((await host.trigger('daily-digest', { params: { day } })).runId);
  t.match(run.result, {
    day,
    total: 4,
    failed: 1,
    byJob: { 'ok-job': { succeeded: 3, failed: 0 }, 'bad-job': { succeeded: 0, failed: 1 } },
    failures: [{ job: 'bad-job', error: 'nope' }],
  });
  const empty = await host.wait((await host.trigger('daily-digest', { params: { day: '2020-01-01' } })).runId);
  t.match(empty.result, { total: 0, summary: 'No runs on 2020-01-01.' });
});

t.test('shipment-follow-up runs 30s after shipment.created, reports progress and emits a follow-up event', async (t) => {
  const { host, clock, of } = await startHost(t, { plugins: [shipment] });
  const followed: unknown[] = [];
  host.register({
    name: 'audit',
    on: ['shipment.followed-up'],
    handler: (ctx: JobContext) => {
      followed.push(ctx.params);
    },
  });
  const { enqueued } = await host.publish('shipment.created', { orderId: 'A-1001' });
  t.equal(enqueued.length, 1);
  await clock.advance(29_999);
  t.equal((await host.run(enqueued[0]!))!.status, 'queued');
  await clock.advance(1);
  const run = await host.wait(enqueued[0]!);
  t.match(run, { status: 'succeeded', result: { orderId: 'A-1001', carrier: 'local', checked: { length: 4 } }, progress: { fraction: 1, text: 'done' } });
  t.ok(of('run.progress').length >= 1);
  await new Promise((r) => setImmediate(r));
  t.same(followed, [{ orderId: 'A-1001' }]);
  t.match(of('notification')[0]!.data, { title: 'Shipment A-1001 followed up' });
  const bad = await host.publish('shipment.created', { nope: 1 });
  t.match(bad.errors, [{ job: 'shipment-follow-up', code: 'INVALID_PARAMS' }]);
});
