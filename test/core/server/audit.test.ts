import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { z } from 'zod';
import type { AuditRecord } from '../../../core/contract/audit.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { createHost } from '../../../core/engine/host.js';
import { createServer } from '../../../core/server/server.js';
import { gate, startServer, tempDir, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';

const VIEWER = 'viewer-token-0123456789abcdef';
const OPERATOR = 'operator-token-0123456789abcdef';
const tokens = [
  { name: 'dash', token: VIEWER, role: 'viewer' as const },
  { name: 'ops', token: OPERATOR, role: 'operator' as const },
];
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const items = (json: Record<string, unknown>): AuditRecord[] => json['items'] as AuditRecord[];

t.test('every change is audited: made (ok), refused for rights (forbidden), failed (error); reads are not', async (t) => {
  const s = await startServer(t, { config: { server: { tokens } } });
  s.host.register({ name: 'deploy', handler: () => 'ok' });
  const ok = await s.request('POST', '/jobs/deploy/run', { headers: bearer(OPERATOR), body: {} });
  t.equal(ok.status, 202);
  t.equal((await s.request('POST', '/jobs/deploy/disable', { headers: bearer(VIEWER) })).status, 403);
  t.equal((await s.request('POST', '/jobs/nope/run', { headers: bearer(OPERATOR) })).status, 404);
  t.equal((await s.request('POST', '/store/damage/ack', { headers: bearer(OPERATOR), body: {} })).status, 403);
  await s.request('GET', '/jobs', { headers: bearer(VIEWER) });
  t.equal((await s.request('POST', '/jobs/deploy/run', { headers: bearer('wrong-token') })).status, 401);

  const page = await s.request('GET', '/audit', { headers: bearer(VIEWER) });
  t.equal(page.status, 200);
  const records = items(page.json);
  t.same(
    records.map((r) => [r.token, r.action, r.target, r.outcome, r.status, r.code]),
    [
      ['ops', 'store.damage.ack', 'store', 'forbidden', 403, 'FORBIDDEN'],
      ['ops', 'job.run', 'job:nope', 'error', 404, 'JOB_NOT_FOUND'],
      ['dash', 'job.disable', 'job:deploy', 'forbidden', 403, 'FORBIDDEN'],
      ['ops', 'job.run', 'job:deploy', 'ok', 202, null],
    ],
    'newest first; a read and a request without a valid token are not changes of anyone',
  );
  for (const r of records) {
    t.match(r, { id: String, at: String, ip: '127.0.0.1', host: s.host.id });
    t.notMatch(JSON.stringify(r), OPERATOR, 'no token value in a record');
  }
  t.ok(records[0]!.id > records[1]!.id, 'ids sort by time');
});

t.test('a bulk dry run changes nothing and leaves no record; the action itself, and a refused dry run, are recorded', async (t) => {
  const s = await startServer(t, { config: { server: { tokens } } });
  s.host.register({ name: 'deploy', handler: () => 'ok' });
  t.equal((await s.request('POST', '/runs/retry', { headers: bearer(OPERATOR), body: { job: 'deploy', dryRun: true } })).status, 200);
  t.equal((await s.request('POST', '/runs/cancel', { headers: bearer(OPERATOR), body: { dryRun: true } })).status, 200);
  t.equal((await s.request('POST', '/runs/cancel', { headers: bearer(VIEWER), body: { dryRun: true } })).status, 403);
  t.equal((await s.request('POST', '/runs/cancel', { headers: bearer(OPERATOR), body: { job: 'deploy' } })).status, 200);
  // Elsewhere a `dryRun` key is only data (an app event's payload): the change is recorded.
  t.equal((await s.request('POST', '/events/deploy.asked', { headers: bearer(OPERATOR), body: { dryRun: true } })).status, 202);
  const records = items((await s.request('GET', '/audit', { headers: bearer(VIEWER) })).json);
  t.same(
    records.map((r) => [r.token, r.action, r.outcome]),
    [
      ['ops', 'event.publish', 'ok'],
      ['ops', 'runs.cancel', 'ok'],
      ['dash', 'runs.cancel', 'forbidden'],
    ],
  );
});

t.test('GET /audit: filters token, action (glob), target (glob), outcome; a cursor; limit', async (t) => {
  const s = await startServer(t, { config: { server: { tokens } } });
  for (const name of ['a-1', 'a-2', 'b-1']) s.host.register({ name, handler: () => 'ok' });
  for (const name of ['a-1', 'a-2', 'b-1', 'a-1']) await s.request('POST', `/jobs/${name}/run`, { headers: bearer(OPERATOR) });
  await s.request('POST', '/jobs/a-1/disable', { headers: bearer(OPERATOR) });
  await s.request('POST', '/jobs/a-2/enable', { headers: bearer(VIEWER) });
  const get = async (query: string): Promise<Record<string, unknown>> => (await s.request('GET', `/audit?${query}`, { headers: bearer(VIEWER) })).json;
  t.same(
    items(await get('target=job:a-*&action=job.run')).map((r) => r.target),
    ['job:a-1', 'job:a-2', 'job:a-1'],
  );
  t.same(
    items(await get('token=dash')).map((r) => r.action),
    ['job.enable'],
  );
  t.same(
    items(await get('outcome=forbidden')).map((r) => r.target),
    ['job:a-2'],
  );
  t.same(
    items(await get('action=job.*&target=job:a-1')).map((r) => r.action),
    ['job.disable', 'job.run', 'job.run'],
  );
  const first = await get('limit=2');
  t.equal(items(first).length, 2);
  t.type(first['next'], 'string');
  const second = await get(`limit=2&before=${String(first['next'])}`);
  const third = await get(`limit=2&before=${String(second['next'])}`);
  const all = [...items(first), ...items(second), ...items(third)].map((r) => r.id);
  t.equal(new Set(all).size, 6, 'the pages do not overlap and cover the six records');
  t.notOk('next' in third, 'the last page has no cursor');
  t.match(await s.request('GET', '/audit?limit=0', { headers: bearer(VIEWER) }), { status: 400, json: { code: 'INVALID_BODY' } });
});

t.test("a trigger's record, stamped when its request began and kept once its run is written, takes its place by id", async (t) => {
  const dir = tempDir(t);
  const s = await startServer(t, { dir, config: { server: { tokens } } });
  // The params check holds the trigger between its stamp (routes.ts, auditAhead) and its write.
  const checking = gate();
  const release = gate();
  const params = z.object({ a: z.number() }).refine(async () => {
    checking.open();
    await release.promise;
    return true;
  });
  s.host.register({ name: 'slow', params, handler: () => null });
  s.host.register({ name: 'other', handler: () => null });
  const trigger = s.request('POST', '/jobs/slow/run', { headers: bearer(OPERATOR), body: { params: { a: 1 } } });
  await checking.promise;
  t.equal((await s.request('POST', '/jobs/other/disable', { headers: bearer(OPERATOR) })).status, 200);
  t.equal((await s.request('POST', '/jobs/other/enable', { headers: bearer(OPERATOR) })).status, 200);
  release.open();
  t.equal((await trigger).status, 202);

  const expected = ['job.enable', 'job.disable', 'job.run'];
  const records = items((await s.request('GET', '/audit', { headers: bearer(VIEWER) })).json);
  t.same(
    records.map((r) => r.action),
    expected,
    'newest first: the trigger began before the other two',
  );
  t.ok(
    records.every((r, i) => i === 0 || records[i - 1]!.id > r.id),
    'ids descending',
  );
  // One record a page: the cursor skips nothing.
  const paged: string[] = [];
  let before: string | undefined;
  for (let i = 0; i < 5; i++) {
    const page = (await s.request('GET', `/audit?limit=1${before ? `&before=${before}` : ''}`, { headers: bearer(VIEWER) })).json;
    paged.push(...items(page).map((r) => r.action));
    before = page['next'] as string | undefined;
    if (before === undefined) break;
  }
  t.same(paged, expected, 'paging with before returns every record once');

  // The journal has them in the order they were written; read back, they are in id order too.
  await s.server.close();
  await s.host.stop({ graceMs: 0 });
  const again = createHost({ config: { server: { tokens }, store: { dir } }, clock: s.clock, logger: silentLogger() });
  await again.start();
  t.teardown(() => again.stop({ graceMs: 0 }));
  t.same(
    (await again.audit.list({})).items.map((r) => r.action),
    expected,
    'the same order after a restart',
  );
});

t.test('no token configured: recorded as anonymous', async (t) => {
  const s = await startServer(t);
  s.host.register({ name: 'x', handler: () => 'ok' });
  await s.request('POST', '/jobs/x/run');
  t.match(items((await s.request('GET', '/audit')).json), [{ token: 'anonymous', action: 'job.run', target: 'job:x', outcome: 'ok' }]);
});

t.test('records survive a restart of the store, and are kept by keepRuns', async (t) => {
  const dir = tempDir(t);
  const config = { server: { tokens }, store: { dir, keepRuns: 3 } };
  const first = createHost({ config, logger: silentLogger() });
  first.register({ name: 'j', handler: () => 'ok' });
  await first.start();
  const server = createServer(first, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${url}/jobs/j/${i % 2 === 0 ? 'disable' : 'enable'}`, {
      method: 'POST',
      headers: { ...bearer(OPERATOR), 'content-type': 'application/json' },
    });
    t.equal(res.status, 200);
  }
  await server.close();
  await first.stop({ graceMs: 0 });

  const second = createHost({ config, logger: silentLogger() });
  await second.start();
  t.teardown(() => second.stop({ graceMs: 0 }));
  const page = await second.audit.list({});
  t.same(
    page.items.map((r) => r.action),
    ['job.disable', 'job.enable', 'job.disable'],
    'the newest keepRuns (3) records, newest first',
  );
});

/** The journal lines on disk under the store's directory (every journal file, in no particular order). */
function journalLines(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('journal-'))
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n'))
    .filter(Boolean);
}

t.test("a trigger's 202 waits for ONE commit: its run and its audit record are written together, before the answer", async (t) => {
  const s = await startServer(t, { config: { server: { tokens } } });
  // The run waits an hour (a manual clock): nothing but the trigger itself writes.
  s.host.register({ name: 'later', handler: () => 'ok' });
  await s.host.flush();
  for (let i = 0; i < 3; i++) {
    const before = s.host.stats().store.commits;
    const res = await s.request('POST', '/jobs/later/run', { headers: bearer(OPERATOR), body: { delay: '1h' } });
    t.equal(res.status, 202);
    const runId = res.json['runId'] as string;
    // Read before anything else happens: what the 202 promised is in the journal already.
    const lines = journalLines(s.dir);
    t.equal(s.host.stats().store.commits - before, 1, `trigger ${i}: one commit for the run and its audit record`);
    t.ok(
      lines.some((l) => l.includes(runId)),
      'the run is on disk',
    );
    const audits = lines.filter((l) => l.startsWith('{"a":')).map((l) => (JSON.parse(l) as { a: AuditRecord }).a);
    t.equal(audits.filter((r) => r.action === 'job.run' && r.outcome === 'ok').length, i + 1, 'its audit record too (one per request)');
  }
  t.equal(items((await s.request('GET', '/audit?action=job.run', { headers: bearer(VIEWER) })).json).length, 3, 'one record per 202, none twice');
});

t.test('a refused trigger records its refusal only; a debounced one (merged, 202) its ok', async (t) => {
  const s = await startServer(t, { config: { server: { tokens } } });
  s.host.register({ name: 'off', handler: () => 'ok' });
  s.host.register({ name: 'calm', debounce: '1m', handler: () => 'ok' });
  t.equal((await s.request('POST', '/jobs/off/disable', { headers: bearer(OPERATOR) })).status, 200);
  t.match(await s.request('POST', '/jobs/off/run', { headers: bearer(OPERATOR), body: {} }), { status: 409, json: { code: 'SKIPPED' } });
  const first = await s.request('POST', '/jobs/calm/run', { headers: bearer(OPERATOR), body: { params: { n: 1 } } });
  const merged = await s.request('POST', '/jobs/calm/run', { headers: bearer(OPERATOR), body: { params: { n: 2 } } });
  t.equal(first.status, 202);
  t.equal(merged.status, 202);
  t.equal(merged.json['runId'], first.json['runId'], 'merged into the waiting run');
  const records = items((await s.request('GET', '/audit?action=job.run', { headers: bearer(VIEWER) })).json);
  t.same(
    records.map((r) => [r.target, r.outcome, r.status, r.code]),
    [
      ['job:calm', 'ok', 202, null],
      ['job:calm', 'ok', 202, null],
      ['job:off', 'error', 409, 'SKIPPED'],
    ],
  );
});

t.test('a change whose client hung up before the answer is recorded with its address all the same', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = 'hang';
  const s = await startServer(t, {
    config: { server: { tokens }, notifications: { timeout: '400ms', destinations: { slow: { kind: 'webhook', url: hook.url } } } },
  });
  await fetch(`${s.url}/notifications/destinations/slow/test`, {
    method: 'POST',
    headers: { ...bearer(OPERATOR), 'content-type': 'application/json' },
    body: '{}',
    signal: AbortSignal.timeout(100),
  }).catch(() => undefined);
  let records: AuditRecord[] = [];
  await until(
    async () => {
      records = items((await s.request('GET', '/audit', { headers: bearer(VIEWER) })).json);
      return records.length === 1;
    },
    5000,
    'the record of the test message',
  );
  t.match(records[0], { action: 'destination.test', token: 'ops', ip: '127.0.0.1' });
});
