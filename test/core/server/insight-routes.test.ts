import t, { type Test } from 'tap';
import type { ERROR_CODES } from '../../../core/contract/errors.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import { BULK_MAX } from '../../../core/contract/views.js';
import { bulkResponse, runLogResponse, seriesResponse } from '../../../core/server/http-schemas.js';
import { gate, startServer, type TestResponse, type TestServer } from '../../helpers.js';

/**
 * The routes behind the charts, run logs and bulk actions, over real HTTP against a host on a
 * manual clock and a real store: GET /stats/series, GET /runs/:id/logs, POST /runs/retry,
 * POST /runs/cancel — including bad filters and the log bounds.
 */

function isError(t: Test, res: TestResponse, status: number, code: keyof typeof ERROR_CODES): void {
  t.equal(res.status, status, `${code}: status`);
  t.match(res.json, { statusCode: status, code, error: String, message: String }, `${code}: shape`);
}

const MINUTE = 60_000;

t.test('GET /stats/series: finished runs per bucket, p50/p95, the backlog at each bucket end', async (t) => {
  const s = await startServer(t);
  let release = gate();
  s.host.register({
    name: 'timed',
    concurrency: 5,
    async handler(ctx: JobContext<{ fail?: boolean }>) {
      await release.promise;
      if (ctx.params.fail) throw new Error('broke');
    },
  });
  const t0 = s.clock.now(); // 12:00:00, a minute boundary
  // Bucket 12:00: two runs of 1 s and 3 s (one fails); bucket 12:01: one run of 10 s; a queued one waits.
  const a = (await s.host.trigger('timed')).runId;
  const b = (await s.host.trigger('timed', { params: { fail: true } })).runId;
  await s.clock.advance(1000);
  release.open();
  await s.host.wait(a);
  await s.host.wait(b);
  release = gate();
  const c = (await s.host.trigger('timed')).runId;
  await s.clock.advance(3000); // c has run 3 s
  release.open();
  await s.host.wait(c);
  release = gate();
  await s.clock.set(t0 + MINUTE + 5000);
  const d = (await s.host.trigger('timed')).runId;
  await s.clock.advance(10_000);
  release.open();
  await s.host.wait(d);
  release = gate();
  s.host.pause();
  await s.host.trigger('timed');
  await s.host.trigger('timed');
  await s.clock.set(t0 + 2 * MINUTE + 1000);

  const res = await s.request('GET', '/stats/series?window=1h');
  t.equal(res.status, 200);
  const series = seriesResponse.parse(res.json);
  t.equal(series.bucketMs, MINUTE);
  t.equal(series.buckets.length, 60);
  t.equal(series.to, new Date(t0 + 3 * MINUTE).toISOString(), 'the last bucket is the one filling now');
  const [b0, b1, b2] = series.buckets.slice(-3);
  t.match(b0, { start: new Date(t0).toISOString(), succeeded: 2, failed: 1, canceled: 0, p50Ms: 1000, p95Ms: 3000, queued: 0 });
  t.match(b1, { start: new Date(t0 + MINUTE).toISOString(), succeeded: 1, failed: 0, p50Ms: 10_000, p95Ms: 10_000, queued: 2 });
  t.match(b2, { succeeded: 0, failed: 0, p50Ms: null, queued: 2 });
  t.same(
    series.buckets.slice(0, -3).map((x) => x.succeeded + x.failed),
    new Array(57).fill(0),
    'nothing else',
  );

  const day = seriesResponse.parse((await s.request('GET', '/stats/series?window=24h&job=timed')).json);
  t.equal(day.bucketMs, 15 * MINUTE);
  t.equal(day.buckets.length, 96);
  t.match(day.buckets.at(-1), { succeeded: 3, failed: 1, queued: 2, p95Ms: 10_000 });
  const week = seriesResponse.parse((await s.request('GET', '/stats/series?window=7d')).json);
  t.equal(week.bucketMs, 2 * 60 * MINUTE);
  t.equal(week.buckets.length, 84);
  t.equal(week.buckets.at(-1)!.succeeded, 3);

  // A new run moves the current bucket.
  s.host.resume();
  release.open();
  await s.host.flush();
  await s.clock.advance(0);
  const later = seriesResponse.parse((await s.request('GET', '/stats/series')).json);
  t.match(later.buckets.at(-1), { succeeded: 2, queued: 0 }, 'the two queued runs ran in this bucket');
});

t.test('GET /stats/series: bad filters are 400 with the zod issues; an unknown job is 404', async (t) => {
  const s = await startServer(t);
  s.host.register({ name: 'known', handler: () => 1 });
  for (const query of ['window=2h', 'window=', 'job=', 'size=3']) {
    const res = await s.request('GET', `/stats/series?${query}`);
    isError(t, res, 400, 'INVALID_BODY');
    t.match(res.json['issues'], [{ path: /^querystring/, message: String }], query);
  }
  isError(t, await s.request('GET', '/stats/series?job=nope'), 404, 'JOB_NOT_FOUND');
  t.equal((await s.request('GET', '/stats/series?job=known')).status, 200);
});

t.test('GET /runs/:id/logs: the lines a handler logged, with level, fields and attempt; live while it runs', async (t) => {
  const s = await startServer(t);
  const release = gate();
  s.host.register({
    name: 'talker',
    retry: { attempts: 2, delay: 0 },
    async handler(ctx: JobContext) {
      ctx.log.info({ rows: 3 }, 'read %d rows', 3);
      ctx.log.child({ step: 'load' }).warn('slow disk');
      if (ctx.attempt === 1) {
        ctx.log.error(new Error('first try fails'));
        throw new Error('again');
      }
      ctx.log.debug('waiting');
      await release.promise;
      ctx.log.info('done');
      return 1;
    },
  });
  const { runId } = await s.host.trigger('talker');
  await s.clock.advance(0);
  await new Promise((r) => setImmediate(r));
  const mid = runLogResponse.parse((await s.request('GET', `/runs/${runId}/logs`)).json);
  t.equal(mid.status, 'running');
  t.equal(mid.traceId, null, 'nothing traces here');
  t.same(
    mid.lines.map((l) => [l.attempt, l.i, l.level, l.msg]),
    [
      [1, 1, 'info', 'read 3 rows'],
      [1, 2, 'warn', 'slow disk'],
      [1, 3, 'error', 'first try fails'],
      [2, 1, 'info', 'read 3 rows'],
      [2, 2, 'warn', 'slow disk'],
      [2, 3, 'debug', 'waiting'],
    ],
    'every line so far, both attempts, before the run ends',
  );
  t.same(mid.lines[0]!.fields, { rows: 3 });
  t.same(mid.lines[1]!.fields, { step: 'load' });
  t.match(mid.lines[2]!.fields, { err: { type: 'Error', message: 'first try fails', stack: String } });
  release.open();
  await s.host.wait(runId);
  const end = runLogResponse.parse((await s.request('GET', `/runs/${runId}/logs`)).json);
  t.equal(end.status, 'succeeded');
  t.equal(end.lines.length, 7);
  t.equal(end.lines.at(-1)!.msg, 'done');
  t.equal(end.dropped, 0);
  t.equal(end.note, null);
  isError(t, await s.request('GET', '/runs/nope/logs'), 404, 'RUN_NOT_FOUND');
});

t.test('GET /runs/:id/logs: the last 500 lines, or 256 KiB, with a note saying what was cut; kept across a restart', async (t) => {
  const s = await startServer(t);
  s.host.register({
    name: 'chatty',
    handler: (ctx: JobContext<{ lines: number; size: number }>) => {
      for (let i = 1; i <= ctx.params.lines; i++) ctx.log.info(`${i} ${'x'.repeat(ctx.params.size)}`);
    },
  });
  const many = (await s.host.trigger('chatty', { params: { lines: 620, size: 10 } })).runId;
  const big = (await s.host.trigger('chatty', { params: { lines: 100, size: 4000 } })).runId;
  await s.host.wait(many);
  await s.host.wait(big);

  const m = runLogResponse.parse((await s.request('GET', `/runs/${many}/logs`)).json);
  t.equal(m.lines.length, 500, '500 lines kept');
  t.equal(m.dropped, 120);
  t.match(m.lines[0]!.msg, /^121 /, 'the last ones');
  t.match(m.lines.at(-1)!.msg, /^620 /);
  t.match(m.note, /first 120 lines were cut.*last 500 lines or 256 KiB/);

  const g = runLogResponse.parse((await s.request('GET', `/runs/${big}/logs`)).json);
  const bytes = g.lines.reduce((sum, l) => sum + Buffer.byteLength(JSON.stringify(l)), 0);
  t.ok(bytes <= 256 * 1024, `within 256 KiB (${bytes})`);
  t.ok(bytes > 256 * 1024 - 4200, 'as many lines as fit');
  t.equal(g.dropped + g.lines.length, 100);
  t.match(g.lines.at(-1)!.msg, /^100 /);
  t.match(g.note, /lines were cut/);

  // A new host on the same store reads them back from disk.
  await s.host.stop();
  const again = await startServer(t, { dir: s.dir, plugins: [{ name: 'chatty', handler: () => 1 }] });
  const back = runLogResponse.parse((await again.request('GET', `/runs/${many}/logs`)).json);
  t.same(back.lines, m.lines);
  t.equal(back.dropped, 120);
});

/** A host whose `flaky` job fails when asked, and a few failed runs spread over time. */
async function failedRuns(t: Test): Promise<{ s: TestServer; times: string[]; failed: string[] }> {
  const s = await startServer(t);
  s.host.register({
    name: 'flaky',
    handler: (ctx: JobContext<{ fail?: boolean }>) => {
      if (ctx.params.fail) throw new Error('broke');
    },
  });
  s.host.register({
    name: 'other',
    handler: () => {
      throw new Error('also broke');
    },
  });
  const failed: string[] = [];
  const times: string[] = [];
  for (let i = 0; i < 4; i++) {
    times.push(new Date(s.clock.now()).toISOString());
    const { runId } = await s.host.trigger('flaky', { params: { fail: true } });
    await s.host.wait(runId);
    failed.push(runId);
    await s.host.wait((await s.host.trigger('flaky')).runId); // a success beside each failure
    await s.clock.advance(10 * MINUTE);
  }
  await s.host.wait((await s.host.trigger('other')).runId);
  return { s, times, failed };
}

t.test('POST /runs/retry: a dry run counts the failed runs in the range; the same filter retries exactly those, once', async (t) => {
  const { s, times, failed } = await failedRuns(t);
  const filter = { job: 'flaky', from: times[1] };
  const dry = bulkResponse.parse((await s.request('POST', '/runs/retry', { body: { ...filter, dryRun: true } })).json);
  t.match(dry, { action: 'retry', dryRun: true, job: 'flaky', matched: 3, touched: 0, truncated: false });
  t.same(
    dry.runs.map((r) => r.runId),
    failed.slice(1),
    'the failed runs since `from`, oldest first',
  );
  // A failure after the count is not in the confirmed action: it repeats the dry run's `to`.
  await s.clock.advance(MINUTE);
  const late = (await s.host.trigger('flaky', { params: { fail: true } })).runId;
  await s.host.wait(late);

  const res = await s.request('POST', '/runs/retry', { body: { ...filter, to: dry.to } });
  t.equal(res.status, 200);
  const done = bulkResponse.parse(res.json);
  t.match(done, { dryRun: false, matched: 3, touched: 3, errors: [] });
  t.same(
    done.runs.map((r) => r.runId),
    failed.slice(1),
  );
  for (const r of done.runs) {
    const replay = await s.host.run(r.newRunId!);
    t.match(replay, { retryOf: r.runId, source: 'retry', job: 'flaky' });
  }
  t.notOk(
    done.runs.some((r) => r.runId === late),
    'the later failure is left alone',
  );

  const twice = bulkResponse.parse((await s.request('POST', '/runs/retry', { body: { ...filter, to: dry.to, dryRun: true } })).json);
  t.equal(twice.matched, 0, 'runs already replayed are not counted again');

  const all = bulkResponse.parse((await s.request('POST', '/runs/retry', { body: { dryRun: true } })).json);
  // Every job: flaky's first failure, the late one and the three replays (they failed too), and other's.
  t.same(
    all.runs.map((r) => r.runId).sort(),
    [failed[0], late, ...done.runs.map((r) => r.newRunId), (await s.host.runs({ job: 'other' })).items[0]!.id].sort(),
  );
});

t.test('POST /runs/retry past its cap of 10,000 runs: a repeat with the same filter reaches the runs left over', async (t) => {
  const s = await startServer(t, { config: { store: { keepRuns: 30_000 } } });
  s.host.register({
    name: 'bad',
    handler: () => {
      throw new Error('broke');
    },
  });
  const total = BULK_MAX + 5;
  const ids: string[] = [];
  for (let i = 0; i < total; i += 500) {
    const batch = await Promise.all(Array.from({ length: Math.min(500, total - i) }, () => s.host.trigger('bad')));
    ids.push(...batch.map((r) => r.runId));
  }
  for (const id of ids) await s.host.wait(id);

  const dry = bulkResponse.parse((await s.request('POST', '/runs/retry', { body: { job: 'bad', dryRun: true } })).json);
  t.match(dry, { matched: BULK_MAX, truncated: true });
  // The replays end after `to`, so they are not candidates themselves.
  await s.clock.advance(MINUTE);
  const first = bulkResponse.parse((await s.request('POST', '/runs/retry', { body: { job: 'bad', to: dry.to } })).json);
  t.match(first, { matched: BULK_MAX, touched: BULK_MAX, truncated: true, errors: [] });
  t.same(
    first.runs.map((r) => r.runId),
    ids.slice(-BULK_MAX),
    'the newest 10,000, oldest first',
  );
  const rest = bulkResponse.parse((await s.request('POST', '/runs/retry', { body: { job: 'bad', to: dry.to } })).json);
  t.match(rest, { matched: 5, touched: 5, truncated: false }, 'the repeat leaves out what was replayed before counting');
  t.same(
    rest.runs.map((r) => r.runId),
    ids.slice(0, 5),
  );
});

t.test('POST /runs/retry and /runs/cancel: bad filters are 400 with the zod issues, an unknown job 404, a non-JSON POST 415', async (t) => {
  const { s, times } = await failedRuns(t);
  for (const route of ['/runs/retry', '/runs/cancel']) {
    const cases: Array<[unknown, RegExp]> = [
      [{ from: 'yesterday' }, /^body\.from/],
      [{ to: '2026-13-45T00:00:00Z' }, /^body\.to/],
      [{ from: times[3], to: times[0] }, /^body\.from/],
      [{ job: '' }, /^body\.job/],
      [{ dryRun: 'yes' }, /^body\.dryRun/],
      [{ status: 'failed' }, /^body/],
    ];
    for (const [body, path] of cases) {
      const res = await s.request('POST', route, { body });
      isError(t, res, 400, 'INVALID_BODY');
      t.match((res.json['issues'] as Array<{ path: string }>)[0]!.path, path, `${route} ${JSON.stringify(body)}`);
    }
    isError(t, await s.request('POST', route, { body: { job: 'nope' } }), 404, 'JOB_NOT_FOUND');
    isError(
      t,
      await s.request('POST', route, { body: 'job=flaky', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  }
  t.equal((await s.host.runs({ status: 'queued' })).items.length, 0, 'nothing was touched');
});

t.test('POST /runs/cancel: cancels the queued runs it counted; a run that started meanwhile goes on', async (t) => {
  const s = await startServer(t);
  const release = gate();
  s.host.register({ name: 'held', concurrency: 1, handler: () => release.promise });
  s.host.register({ name: 'else', handler: () => release.promise });
  s.host.pause();
  const queued: string[] = [];
  for (let i = 0; i < 3; i++) queued.push((await s.host.trigger('held')).runId);
  const other = (await s.host.trigger('else')).runId;
  const dry = bulkResponse.parse((await s.request('POST', '/runs/cancel', { body: { job: 'held', dryRun: true } })).json);
  t.match(dry, { action: 'cancel', matched: 3, touched: 0 });
  t.same(
    dry.runs.map((r) => r.runId),
    queued,
  );
  s.host.resume();
  await s.clock.advance(0);
  await new Promise((r) => setImmediate(r));
  t.equal((await s.host.run(queued[0]!))?.status, 'running', 'the first one started meanwhile');
  const done = bulkResponse.parse((await s.request('POST', '/runs/cancel', { body: { job: 'held', to: dry.to } })).json);
  t.match(done, { matched: 2, touched: 2 });
  t.same(
    done.runs.map((r) => r.runId),
    queued.slice(1),
  );
  for (const id of queued.slice(1)) t.equal((await s.host.run(id))?.status, 'canceled');
  t.equal((await s.host.run(queued[0]!))?.status, 'running', 'not the running one');
  t.equal((await s.host.run(other))?.status, 'running', 'nor another job');
  release.open();
});
