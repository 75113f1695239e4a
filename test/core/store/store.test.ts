import { appendFileSync, constants, cpSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigInput } from '../../../core/contract/config.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import type { Run } from '../../../core/contract/run.js';
import { createHost } from '../../../core/engine/host.js';
import { serializeRun } from '../../../core/store/serialize.js';
import { gate, startHost, tempDir, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';

const noop = (): undefined => undefined;

t.test('a new host on the same directory sees earlier runs, flags, counts and delayed runs', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'ok', handler: () => ({ n: 1 }) });
  a.host.register({
    name: 'bad',
    handler: () => {
      throw new Error('boom');
    },
  });
  const ok = await a.host.trigger('ok');
  const bad = await a.host.trigger('bad');
  await a.host.wait(ok.runId);
  await a.host.wait(bad.runId);
  const later = await a.host.trigger('ok', { delay: '1h' });
  await a.host.disable('bad');
  await a.host.stop();

  const b = await startHost(t, { dir, clock: a.clock, start: false });
  b.host.register({ name: 'ok', handler: () => ({ n: 1 }) });
  b.host.register({ name: 'bad', handler: noop });
  await b.host.start();
  t.match(await b.host.run(ok.runId), { status: 'succeeded', result: { n: 1 } });
  t.match(await b.host.run(bad.runId), { status: 'failed', error: { message: 'boom' } });
  t.match(await b.host.run(later.runId), { status: 'queued', runAt: new Date(a.clock.now() + 3_600_000).toISOString() });
  t.equal(b.host.job('bad')!.enabled, false, 'the run-time flag survived');
  t.same(b.host.job('ok')!.counts, { succeeded: 1, failed: 0, canceled: 0, queued: 1, running: 0 });
  t.match(b.host.job('ok')!.lastRun, { runId: ok.runId, status: 'succeeded' });
  const page = await b.host.runs();
  t.same(
    page.items.map((r) => r.id),
    [later.runId, bad.runId, ok.runId],
  );
  await b.clock.advance(3_600_000);
  t.equal((await b.host.wait(later.runId)).status, 'succeeded', 'the delayed run kept its time');
});

t.test('pagination and filters work across segments, newest first', async (t) => {
  const { host } = await startHost(t, { storeOptions: { segmentSize: 10 }, config: { store: { keepRuns: 10_000 } } });
  host.register({ name: 'a', handler: noop });
  host.register({
    name: 'b',
    handler: () => {
      throw new Error('b');
    },
  });
  const ids: string[] = [];
  for (let i = 0; i < 55; i++) {
    const { runId } = await host.trigger(i % 5 === 0 ? 'b' : 'a');
    ids.push(runId);
    await host.wait(runId);
  }
  t.ok(host.stats().store.segments >= 5, 'history spans several segments');
  const seen: string[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await host.runs({ limit: 20, before });
    seen.push(...page.items.map((r) => r.id));
    if (!page.next) break;
    before = page.next;
  }
  t.same(seen, [...ids].reverse(), 'every run once, newest first');
  const failed = await host.runs({ status: 'failed', limit: 100 });
  t.equal(failed.items.length, 11);
  t.ok(failed.items.every((r) => r.job === 'b'));
  const onlyA = await host.runs({ job: 'a', limit: 5 });
  t.equal(onlyA.items.length, 5);
  t.ok(onlyA.next);
  t.same((await host.runs({ job: 'nope' })).items, []);
  t.match(await host.run(ids[0]!), { id: ids[0], job: 'b' }, 'an old run is read back from its segment');
});

t.test('retention keeps at least keepRuns and drops whole old segments', async (t) => {
  const { host, dir } = await startHost(t, { config: { store: { keepRuns: 100 } } });
  host.register({ name: 'a', handler: noop });
  let first = '';
  for (let i = 0; i < 450; i++) {
    const { runId } = await host.trigger('a');
    if (i === 0) first = runId;
    await host.wait(runId);
  }
  const kept = host.stats().store.historyRuns;
  t.ok(kept >= 100 && kept <= 200, `kept ${kept}`);
  t.equal(await host.run(first), undefined, 'the oldest runs are gone');
  await host.stop();
  t.ok(readdirSync(path.join(dir, 'segments')).length <= 3, 'old segment files are deleted');
  t.equal(host.job('a')!.counts.succeeded, 450, 'counts are lifetime totals, not retained history');
});

t.test('concurrent saves share one commit (group commit)', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'a', concurrency: 100, handler: noop });
  const before = host.stats().store.commits;
  await Promise.all(Array.from({ length: 200 }, () => host.trigger('a')));
  const commits = host.stats().store.commits - before;
  t.ok(commits <= 3, `200 triggers took ${commits} commits`);
});

/** Open descriptors of this process on .ndjson files under `dir`, with their open flags. */
function ndjsonFlags(dir: string): { file: string; flags: number }[] {
  const open: { file: string; flags: number }[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let file: string;
    try {
      file = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed since the listing
    }
    if (!file.startsWith(dir) || !file.endsWith('.ndjson')) continue;
    const m = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    open.push({ file: path.relative(dir, file), flags: parseInt(m![1]!, 8) });
  }
  return open;
}

t.test('with fsync on, each journal and segment write is synced (O_DSYNC); with it off, none is', async (t) => {
  for (const fsync of [true, false]) {
    const dir = tempDir(t);
    const { host } = await startHost(t, { dir, config: { store: { fsync } } });
    host.register({ name: 'a', handler: noop });
    await host.wait((await host.trigger('a')).runId);
    const files = ndjsonFlags(dir);
    t.ok(
      files.some((f) => f.file.startsWith('journal-')) && files.some((f) => f.file.startsWith('segments')),
      `journal and segment open (${files.map((f) => f.file).join(', ')})`,
    );
    for (const f of files) t.equal((f.flags & constants.O_DSYNC) !== 0, fsync, `${f.file}: O_DSYNC ${fsync ? 'set' : 'not set'}`);
    await host.stop();
  }
});

t.test('a torn tail from an interrupted write is dropped; the store still loads', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'a', handler: noop });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await a.host.wait((await a.host.trigger('a')).runId)).id);
  await a.host.stop();
  const seg = path.join(dir, 'segments', readdirSync(path.join(dir, 'segments'))[0]!);
  appendFileSync(seg, '{"id":"torn","job":"a","sta');
  const journal = path.join(dir, readdirSync(dir).find((f) => f.startsWith('journal-'))!);
  appendFileSync(journal, 'garbage line\n{"r":{"id":"half');
  const b = await startHost(t, { dir });
  b.host.register({ name: 'a', handler: noop });
  t.same(
    (await b.host.runs()).items.map((r) => r.id),
    [...ids].reverse(),
  );
  const next = await b.host.trigger('a');
  t.equal((await b.host.wait(next.runId)).status, 'succeeded', 'appends continue after the dropped tail');
  await b.host.stop();
  const lines = readFileSync(seg, 'utf8').trim().split('\n');
  t.ok(
    lines.every((l) => JSON.parse(l)),
    'no torn line left in the segment',
  );
});

t.test('runs found running after a crash are recovered (queued again, or failed when out of attempts)', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const a = await startHost(t, { dir });
  const hang = gate();
  a.host.register({ name: 'retryable', retry: { attempts: 2 }, handler: () => hang.promise });
  a.host.register({ name: 'single', handler: () => hang.promise });
  const r1 = await a.host.trigger('retryable');
  const r2 = await a.host.trigger('single');
  t.equal((await a.host.run(r1.runId))!.status, 'running');
  await a.host.flush();
  // the 'running' state is durable: copy the directory as a kill -9 would leave it
  cpSync(dir, crashed, { recursive: true });
  hang.open();

  const b = await startHost(t, { dir: crashed, clock: a.clock, start: false });
  let attempt = 0;
  b.host.register({
    name: 'retryable',
    retry: { attempts: 2 },
    handler: (ctx: JobContext) => {
      attempt = ctx.attempt;
    },
  });
  b.host.register({ name: 'single', handler: noop });
  await b.host.start();
  const rec = await b.host.wait(r1.runId);
  t.equal(rec.status, 'succeeded');
  t.equal(rec.source, 'recovery');
  t.equal(rec.origin, 'api');
  t.equal(attempt, 2);
  t.match(rec.attempts[0], { n: 1, error: { code: 'INTERRUPTED' } });
  t.match(await b.host.run(r2.runId), { status: 'failed', error: { code: 'INTERRUPTED' } });
  // both are announced, so live clients and metrics see what recovery did
  t.match(
    b.of('run.queued').map((e) => e.data),
    [{ runId: r1.runId, source: 'recovery', delayed: false }],
  );
  t.match(
    b.of('run.failed').map((e) => e.data),
    [{ runId: r2.runId, job: 'single', error: { code: 'INTERRUPTED' } }],
  );
});

t.test(
  'a run recovery ends failed is ended once the plugins are in: its failed notification and its after child, even past a crash during that start',
  async (t) => {
    const dir = tempDir(t);
    const crashed = tempDir(t);
    const again = tempDir(t);
    const hook = await httpReceiver(t);
    const config = { notifications: { destinations: { hook: { kind: 'webhook', url: hook.url } }, throttle: 0 } } as ConfigInput;
    const hang = gate();
    const parent = (handler: () => unknown) => ({ name: 'parent', notify: { on: ['failed' as const], to: ['hook'] }, handler });
    const child = { name: 'child', after: [{ job: 'parent', status: 'failed' as const }], handler: noop };
    const a = await startHost(t, { dir, config });
    a.host.register(parent(() => hang.promise));
    const { runId } = await a.host.trigger('parent');
    await until(async () => (await a.host.run(runId))?.status === 'running', 5000, 'running');
    await a.host.flush();
    cpSync(dir, crashed, { recursive: true });
    hang.open();

    // Its jobs come in as the plugins directory brings them: in a service, after the recovery.
    const b = await startHost(t, { dir: crashed, clock: a.clock, start: false, config });
    const entered = gate();
    const plugins = gate();
    b.host.use({
      name: 'plugins',
      start: async () => {
        entered.open();
        await plugins.promise;
        b.host.register(parent(noop));
        b.host.register(child);
      },
      stop: async () => undefined,
    });
    const starting = b.host.start();
    await entered.promise;
    await b.host.flush();
    // A kill -9 now: nothing of the recovery's end is written yet (before, the failure was, and the child never came).
    cpSync(crashed, again, { recursive: true });
    plugins.open();
    await starting;
    t.match(await b.host.run(runId), { status: 'failed', error: { code: 'INTERRUPTED' } });
    await hook.count(1);
    t.match(hook.received[0]!.json, { job: 'parent', runId, status: 'failed' }, 'the failed notification went out');
    const kids = (await b.host.runs({ job: 'child' })).items;
    t.match(kids, [{ after: { runId, job: 'parent' } }], 'its child exists');

    const c = await startHost(t, { dir: again, clock: a.clock, start: false, config });
    c.host.register(parent(noop));
    c.host.register(child);
    await c.host.start();
    t.match(await c.host.run(runId), { status: 'failed', error: { code: 'INTERRUPTED' } });
    t.equal((await c.host.runs({ job: 'child' })).items.length, 1, 'the child, once, after the crash during the start');
  },
);

t.test('the in-memory store behaves the same and writes nothing', async (t) => {
  const dir = tempDir(t);
  const host = createHost({ store: 'memory', config: { store: { dir } }, logger: silentLogger() });
  host.register({ name: 'a', handler: noop });
  await host.start();
  t.teardown(() => host.stop());
  const { runId } = await host.trigger('a');
  t.equal((await host.wait(runId)).status, 'succeeded');
  t.equal((await host.runs()).items.length, 1);
  t.same(readdirSync(dir), []);
});

t.test('serializeRun matches JSON.stringify for runs with every field set', async (t) => {
  const run: Run = {
    id: '0mwt7yla80001ub5',
    job: 'a-job',
    status: 'failed',
    source: 'event',
    params: { s: 'quote " backslash \\ newline \n unicode ✓ \u2028', n: [1, 2.5, -3e-7], nested: { ok: true, nil: null } },
    priority: -5,
    key: 'key "with" quotes\t',
    queue: 'critical',
    createdAt: '2026-01-01T00:00:00.000Z',
    runAt: '2026-01-01T00:00:01.000Z',
    startedAt: '2026-01-01T00:00:01.000Z',
    endedAt: '2026-01-01T00:00:02.000Z',
    durationMs: 1000,
    progress: { fraction: 0.25, text: 'half "way"\n' },
    attempts: [
      { n: 1, startedAt: '2026-01-01T00:00:01.000Z', endedAt: '2026-01-01T00:00:01.500Z', error: { code: 'X', message: 'line1\nline2 "q"' } },
      { n: 2, startedAt: '2026-01-01T00:00:01.600Z', endedAt: null, error: null },
    ],
    maxAttempts: 3,
    result: [1, 'two', { three: 3 }],
    error: { code: 'TIMEOUT', message: 'late' },
    retryOf: '0mwt7yla80001ub4',
    event: 'shipment.created',
    after: { runId: '0mwt7yla70001ub4', job: 'extract' },
    origin: 'http',
  };
  t.equal(serializeRun(run), JSON.stringify(run));
  const empty: Run = {
    ...run,
    params: {},
    key: null,
    startedAt: null,
    endedAt: null,
    durationMs: null,
    progress: { fraction: 0, text: null },
    attempts: [],
    result: null,
    error: null,
    retryOf: null,
    event: null,
  };
  delete empty.origin;
  t.equal(serializeRun(empty), JSON.stringify(empty));
  t.equal(serializeRun({ ...empty, result: 'text' }), JSON.stringify({ ...empty, result: 'text' }));
  t.equal(serializeRun({ ...empty, result: 0 }), JSON.stringify({ ...empty, result: 0 }));
  // Each part the serializer folds into its literals, set alone; and the line's end.
  const mixed: Run[] = [
    { ...empty, error: { code: 'X', message: 'm' } },
    { ...empty, retryOf: '0mwt7yla80001ub4' },
    { ...empty, event: 'e.x' },
    { ...empty, key: 'k' },
    { ...empty, startedAt: run.startedAt },
    { ...empty, endedAt: run.endedAt, durationMs: 5 },
    { ...empty, progress: { fraction: 1, text: 't' } },
    { ...empty, attempts: [{ n: 1, startedAt: run.runAt, endedAt: null, error: { code: 'Y', message: '"' } }] },
    { ...empty, host: null },
    { ...empty, host: 'vm:1', traceId: 'ab', traceparent: '00-ab-cd-01' },
  ];
  for (const m of mixed) t.equal(serializeRun(m), JSON.stringify(m));
  t.equal(serializeRun(run, '}\n'), `${JSON.stringify(run)}}\n`);
  writeFileSync(path.join(tempDir(t), 'x.json'), serializeRun(run));
});

t.test('temp files a write left behind (a crash, a full disk) are removed when the store opens; nothing else is', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'ok', handler: noop });
  const done = await a.host.wait((await a.host.trigger('ok')).runId);
  await a.host.stop();
  const left = ['.state.json.4242.tmp', '.format.17.tmp', '.pauses.json.99999.tmp'];
  for (const name of left) writeFileSync(path.join(dir, name), '{"partial":');
  const kept = ['notes.tmp', '.state.json.tmp', 'state.json.damaged-1767614400000'];
  for (const name of kept) writeFileSync(path.join(dir, name), 'not ours to remove');

  const b = await startHost(t, { dir, clock: a.clock });
  const names = readdirSync(dir);
  for (const name of left) t.notOk(names.includes(name), `${name} removed`);
  for (const name of kept) t.ok(names.includes(name), `${name} kept`);
  t.match(await b.host.run(done.id), { status: 'succeeded' });
});
