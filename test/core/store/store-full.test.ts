import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { captureLogger, startHost, startServer, type Tap, tempDir, until } from '../../helpers.js';

/**
 * A real full disk: the store on a 4 MiB tmpfs that the test fills. Mounting needs root (CI runs
 * as root); elsewhere the test is skipped and says why.
 */

const notRoot = process.getuid?.() !== 0 && 'mounting a tmpfs for a real full disk needs root (CI runs the suite as root)';

/** Mounts a small tmpfs on `dir` (default: a fresh temp dir), unmounted when the test ends. */
function mountTmpfs(t: Tap, dir = tempDir(t, 'jobhost-full-disk-')): string {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
  // Registered before the host starts, so it runs after the host's own teardown (last in, first out).
  t.teardown(() => execFileSync('umount', [dir]));
  return dir;
}

/** Writes zeros into `file` until the filesystem has no room left. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

t.test(
  'a full disk: triggers get 503 with Retry-After, /ready is 503, and both recover by themselves; nothing acknowledged is lost',
  { skip: notRoot },
  async (t) => {
    const mount = mountTmpfs(t);
    const dir = path.join(mount, 'data');
    const { logger, lines: logs } = captureLogger();
    const { host, clock, request, metrics } = await startServer(t, { dir, logger });
    host.register({ name: 'a', handler: () => 'done' });
    const acknowledged: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await request('POST', '/jobs/a/run', { body: {} });
      t.equal(res.status, 202);
      acknowledged.push(res.json['runId'] as string);
    }
    for (const id of acknowledged) await host.wait(id);

    const filler = path.join(mount, 'filler');
    fill(filler);
    // The store's files may still have room in their last page: trigger until a commit fails.
    let refused: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      const res = await request('POST', '/jobs/a/run', { body: {} });
      if (res.status === 202) acknowledged.push(res.json['runId'] as string);
      else refused = res;
    }
    t.ok(refused, 'a trigger was refused once the disk was full');
    t.equal(refused!.status, 503);
    t.match(refused!.json, { statusCode: 503, code: 'STORE_WRITE_FAILED', error: 'Service Unavailable', errno: 'ENOSPC', retryAfter: Number });
    t.match(refused!.headers.get('retry-after'), /^[1-9]\d*$/);
    t.notMatch(refused!.text, mount, 'no file system path in the answer');

    // From now on, new work is refused at once, without creating a run.
    const before = (await host.runs({ limit: 1000 })).items.length;
    const again = await request('POST', '/jobs/a/run', { body: {} });
    t.match(again, { status: 503, json: { code: 'STORE_WRITE_FAILED' } });
    t.match(again.headers.get('retry-after'), /^[1-9]\d*$/);
    t.equal((await host.runs({ limit: 1000 })).items.length, before, 'no run was made');
    t.match(await request('POST', '/events/thing.happened', { body: {} }), { status: 503, json: { code: 'STORE_WRITE_FAILED' } }, 'app events too');
    for (const route of ['/runs/retry', '/runs/cancel']) {
      const bulk = await request('POST', route, { body: {} });
      t.match(bulk, { status: 503, json: { code: 'STORE_WRITE_FAILED', retryAfter: Number } }, `${route} too, once, not per run`);
      t.match(bulk.headers.get('retry-after'), /^[1-9]\d*$/);
      t.equal((await request('POST', route, { body: { dryRun: true } })).status, 200, `a dry run of ${route} still counts`);
    }

    const ready = await request('GET', '/ready');
    t.equal(ready.status, 503);
    t.match(ready.json, { ready: false, status: 'degraded', state: 'running', store: { writable: false, error: { code: 'ENOSPC', retryAfter: Number } } });
    t.equal((await request('GET', '/health')).status, 200, 'alive all along');
    t.match(await metrics(), /^jobhost_store_writable 0$/m);

    // Space comes back: the store's own retry finds it, with no one's help.
    rmSync(filler);
    await until(async () => (await request('GET', '/ready')).status === 200, 20_000, '/ready back to 200');
    t.match((await request('GET', '/ready')).json, { ready: true, store: { writable: true, error: null } });
    t.match(await metrics(), /^jobhost_store_writable 1$/m);
    const after = await request('POST', '/jobs/a/run', { body: {} });
    t.equal(after.status, 202);
    acknowledged.push(after.json['runId'] as string);
    for (const id of acknowledged) t.equal((await host.wait(id)).status, 'succeeded');
    // A 202's audit record rides in its run's commit: the trigger whose commit failed (503) has its
    // refusal recorded, under the id of the ok record it carried, which it replaces (a commit may
    // fail after the journal took that record, when only the segment is full).
    const audited = async (h: typeof host): Promise<Array<[string, number]>> =>
      (await h.audit.list({ action: 'job.run', limit: 1000 })).items.map((r) => [r.outcome, r.status]);
    const records = await audited(host);
    t.equal(records.filter(([o]) => o === 'ok').length, acknowledged.length, 'one ok record per 202, none for a failed commit');
    t.ok(
      records.some(([o, status]) => o === 'error' && status === 503),
      'the 503 is recorded',
    );

    // A stop on a full disk still ends: the closing checkpoint fails, the journal keeps everything.
    fill(filler);
    await host.stop();
    t.ok(
      logs.some((l) => l['code'] === 'STORE_WRITE_FAILED' && /closing checkpoint/.test(String(l['msg']))),
      'the failed checkpoint was logged',
    );
    rmSync(filler);

    // Every run that was acknowledged is on disk, final, and in history once.
    await clock.advance(1000);
    const next = await startHost(t, { dir, clock });
    for (const id of acknowledged) t.match(await next.host.run(id), { status: 'succeeded', result: 'done' }, id);
    t.same(await audited(next.host), records, 'the same records after a restart');
    const lines = readdirSync(path.join(dir, 'segments')).flatMap((f) =>
      readFileSync(path.join(dir, 'segments', f), 'utf8')
        .split('\n')
        .filter(Boolean),
    );
    const ids = lines.map((l) => (JSON.parse(l) as { id: string }).id);
    t.equal(new Set(ids).size, ids.length, 'no finished run was written twice by the retried commits');
    t.same(next.host.storeHealth().damage, [], 'and the store holds no damage');
    await next.host.stop();
  },
);

t.test('the journal full, the segments not: a finished run reaches its segment once, however often the commit is retried', { skip: notRoot }, async (t) => {
  // The store on a full tmpfs, its segments on another with room: each commit's journal write
  // fails while its segment write succeeds. A job with notifications puts a journal record
  // (the notification) in the same commit as each finished run.
  const dir = mountTmpfs(t);
  const segments = path.join(dir, 'segments');
  mkdirSync(segments);
  mountTmpfs(t, segments);
  const { host, clock } = await startServer(t, { dir });
  host.register({ name: 'a', notify: { on: ['succeeded'] }, handler: () => 'done' });
  const first = await host.trigger('a');
  await host.wait(first.runId);
  const filler = path.join(dir, 'filler');
  fill(filler);

  // The journal's last page may still have room: trigger until one is refused. Each run that
  // finishes puts its final record in the segment and its notification in the journal, in
  // one commit, so from then on that commit keeps half failing while the store retries it.
  let refused: unknown;
  for (let i = 0; i < 500 && refused === undefined; i++) {
    await host.trigger('a').catch((err: unknown) => (refused = err));
    await host.flush().catch(() => undefined);
  }
  t.match(refused, { code: 'STORE_WRITE_FAILED', details: { errno: 'ENOSPC' } });
  // Let the store retry a few times against the full journal.
  const retried = host.storeHealth().writeError!.retryAfter;
  await until(() => host.storeHealth().writeError!.retryAfter > retried, 10_000, 'a few retries');

  rmSync(filler);
  await until(() => host.storeHealth().writeError === null, 20_000, 'the store writing again');
  await host.stop();

  await clock.advance(1000);
  const next = await startHost(t, { dir, clock, start: false });
  next.host.register({ name: 'a', notify: { on: ['succeeded'] }, handler: () => 'done' });
  await next.host.start();
  const ids = readdirSync(segments)
    .filter((f) => f.endsWith('.ndjson'))
    .flatMap((f) => readFileSync(path.join(segments, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => (JSON.parse(l) as { id: string }).id);
  t.equal(new Set(ids).size, ids.length, 'no finished run was written to its segment twice');
  t.ok(ids.includes(first.runId));
  t.equal(next.host.job('a')!.counts.succeeded, ids.length, 'each run counted once');
  t.equal((await next.host.notifications({ limit: 1000 })).items.length, ids.length, 'and each notification kept once the journal had room');
  await next.host.stop();
});

t.test('a checkpoint a full disk refuses leaves no temp file, at a stop or at each start into the full disk', { skip: notRoot }, async (t) => {
  const dir = mountTmpfs(t);
  const temps = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp'));
  const a = await startHost(t, { dir });
  a.host.register({ name: 'later', handler: () => 'done' });
  // Waiting runs the checkpoint holds: more than a partly filled last page has room for.
  for (let i = 0; i < 20; i++) await a.host.trigger('later', { delay: '1h', params: { pad: 'x'.repeat(2000), i } });
  fill(path.join(dir, 'filler'));
  await a.host.stop();
  t.same(temps(), [], 'the closing checkpoint failed and removed its temp file');
  for (let i = 0; i < 2; i++) {
    const b = await startHost(t, { dir, clock: a.clock, start: false });
    // The code a commit that cannot write has, and the file (which one depends on what still fit).
    await t.rejects(b.host.start(), { code: 'STORE_WRITE_FAILED', details: { errno: 'ENOSPC', file: new RegExp(`^${dir}/`) } });
    t.same(temps(), [], `start ${i + 1} into the full disk left no temp file`);
  }
});

t.test('a read-only store directory: the host does not start, with STORE_WRITE_FAILED naming the file', { skip: notRoot }, async (t) => {
  const dir = mountTmpfs(t);
  const a = await startHost(t, { dir });
  await a.host.stop();
  execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' });
  const b = await startHost(t, { dir, clock: a.clock, start: false });
  await t.rejects(b.host.start(), {
    code: 'STORE_WRITE_FAILED',
    message: `the store cannot write ${dir}/jobhost.lock (EROFS: the file system is read-only)`,
    details: { errno: 'EROFS', file: `${dir}/jobhost.lock` },
  });
});
