import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { createStore } from '../../../core/store/store.js';
import { readStoreFormat, STORE_FORMAT } from '../../../core/store/store-format.js';
import { startHost, type Tap, type TestHost, tempDir } from '../../helpers.js';

/** Stores of every format committed so far (`test/fixtures/store-v<N>/`, see make-store-v1.ts): each must open. */
const fixtures = path.resolve(import.meta.dirname, '../../fixtures');
/** The fixture's hosts ran at 2026-12-01 12:00-12:01 UTC; this one starts a minute later. */
const after = Date.UTC(2026, 11, 1, 12, 2, 0);

/** A copy of fixture `name` in a temp dir (opening a store writes to it). */
function copyFixture(t: Tap, name: string): string {
  const dir = path.join(tempDir(t), 'store');
  cpSync(path.join(fixtures, name), dir, { recursive: true });
  return dir;
}

/** Every file under `dir` with its bytes, for "left untouched". */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(path.relative(dir, p), readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return files;
}

async function openFixture(t: Tap, dir: string): Promise<TestHost> {
  const h = await startHost(t, { dir, clock: createManualClock(after), start: false });
  h.host.register({ name: 'ok', notify: { on: ['succeeded'], title: 'Ok done', tags: ['fixture'] }, handler: () => ({ n: 1 }) });
  h.host.register({ name: 'bad', handler: () => undefined });
  h.host.register({ name: 'slow', handler: () => undefined });
  h.host.register({ name: 'off', handler: () => undefined });
  await h.host.start();
  return h;
}

t.test('the format-1 store written by an earlier version opens: every run, flag, count, notification and log line', async (t) => {
  const dir = copyFixture(t, 'store-v1');
  const { host } = await openFixture(t, dir);
  const runs = (await host.runs({ limit: 100 })).items;
  const byId = new Map(runs.map((r) => [r.id, r]));
  t.same(
    runs.map((r) => [r.id, r.job, r.status]),
    [
      ['0mx4nbiao0005i00', 'slow', 'failed'],
      ['0mx4nbiao0004i00', 'ok', 'queued'],
      ['0mx4nbiao0002i00', 'ok', 'succeeded'],
      ['0mx4nbiao0001i00', 'bad', 'failed'],
      ['0mx4na8000008i00', 'ok', 'canceled'],
      ['0mx4na8000006i00', 'ok', 'succeeded'],
      ['0mx4na8000005i00', 'bad', 'failed'],
      ['0mx4na8000003i00', 'ok', 'succeeded'],
      ['0mx4na8000001i00', 'ok', 'succeeded'],
    ],
    'every run of both hosts, newest first',
  );
  t.match(byId.get('0mx4nbiao0005i00'), { error: { code: 'INTERRUPTED' } }, 'the run left running was recovered (its one attempt interrupted)');
  t.equal(byId.get('0mx4nbiao0004i00')!.runAt, '2026-12-01T13:01:00.000Z', 'the delayed run kept its time');
  t.match(byId.get('0mx4nbiao0002i00'), { key: 'k-1', result: { n: 1 }, progress: { fraction: 1, text: 'done' } });
  t.match(byId.get('0mx4na8000005i00'), { error: { message: 'boom' } });
  t.match(byId.get('0mx4na8000001i00'), { params: { job: 'ok' } });
  t.equal(host.job('off')!.enabled, false, 'the disabled flag survived');
  t.match(host.job('ok')!.counts, { succeeded: 4, canceled: 1, queued: 1 });
  const notifications = (await host.notifications({ limit: 100 })).items;
  t.equal(notifications.length, 4, "each of the four successes' notifications");
  t.match(notifications[0], { runId: '0mx4nbiao0002i00', title: 'Ok done Completed', tags: ['fixture'] });
  const { log } = await host.runLog('0mx4nbiao0002i00');
  t.match(log.lines, [{ level: 'info', msg: /working/ }], "a finished run's log lines");
  t.equal(await readStoreFormat(dir), STORE_FORMAT);
});

t.test('a store without a `format` file (written before it existed) opens as format 1 and is stamped', async (t) => {
  const dir = copyFixture(t, 'store-v1');
  rmSync(path.join(dir, 'format'));
  const { host } = await openFixture(t, dir);
  t.equal((await host.runs({ limit: 100 })).items.length, 9);
  t.same(JSON.parse(readFileSync(path.join(dir, 'format'), 'utf8')), { format: 1 });
});

t.test('a store of a newer format is refused with STORE_VERSION_UNSUPPORTED and left byte for byte as it was', async (t) => {
  const dir = copyFixture(t, 'store-v1');
  writeFileSync(path.join(dir, 'format'), `${JSON.stringify({ format: STORE_FORMAT + 1 })}\n`);
  const before = snapshot(dir);
  const clock = createManualClock(after);
  const store = createStore({ dir, clock, logger: silentLogger() });
  await t.rejects(store.open(), { code: 'STORE_VERSION_UNSUPPORTED', details: { format: STORE_FORMAT + 1, supported: STORE_FORMAT } });
  t.same(snapshot(dir), before, 'every file, the lock file too');

  // Through a whole host: start fails with the same code, the directory still untouched.
  const h = await startHost(t, { dir, clock, start: false });
  await t.rejects(h.host.start(), { code: 'STORE_VERSION_UNSUPPORTED' });
  t.same(snapshot(dir), before);
});

t.test('a checkpoint of a newer version (no `format` file) is refused as it is, not set aside as damage', async (t) => {
  const dir = copyFixture(t, 'store-v1');
  rmSync(path.join(dir, 'format'));
  const state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ ...state, version: STORE_FORMAT + 1 }));
  const before = snapshot(dir);
  const store = createStore({ dir, clock: createManualClock(after), logger: silentLogger() });
  await t.rejects(store.open(), { code: 'STORE_VERSION_UNSUPPORTED' });
  t.same(snapshot(dir), before);
  // The lock was let go: the next open (here, of the same version) is not STORE_LOCKED.
  await t.rejects(createStore({ dir, clock: createManualClock(after), logger: silentLogger() }).open(), { code: 'STORE_VERSION_UNSUPPORTED' });
});

t.test('a new store is stamped with the current format', async (t) => {
  const dir = path.join(tempDir(t), 'fresh');
  const store = createStore({ dir, clock: createManualClock(after), logger: silentLogger() });
  await store.open();
  await store.close();
  t.same(JSON.parse(readFileSync(path.join(dir, 'format'), 'utf8')), { format: STORE_FORMAT });
});
