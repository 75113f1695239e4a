import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { isHostError } from '../../../core/contract/errors.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { createHost, type Host } from '../../../core/engine/host.js';
import { LOCK_FILE } from '../../../core/store/lock.js';
import { createStore } from '../../../core/store/store.js';
import { tempDir } from '../../helpers.js';

const echo = { name: 'echo', handler: (ctx: { params: unknown }) => ctx.params };

/** A host on the store in `dir`, stopped when the test ends. */
function hostOn(t: Tap, dir: string, options: { memory?: boolean } = {}): Host {
  const host = createHost({
    config: { store: { dir } },
    clock: createManualClock(Date.UTC(2026, 0, 5, 12, 0, 0)),
    random: () => 0.5,
    logger: silentLogger(),
    plugins: [echo],
    ...(options.memory && { store: 'memory' as const }),
  });
  t.teardown(() => host.stop({ graceMs: 0 }));
  return host;
}
type Tap = { teardown(fn: () => unknown): void };

async function startRejection(host: Host): Promise<unknown> {
  try {
    await host.start();
  } catch (err) {
    return err;
  }
  return undefined;
}

t.test('a second host on the same store directory refuses to start; the first goes on; the directory frees at stop', async (t) => {
  const dir = tempDir(t);
  const first = hostOn(t, dir);
  await first.start();
  const before = await first.trigger('echo', { params: { n: 1 } });
  t.match(await first.wait(before.runId), { status: 'succeeded' });

  const second = hostOn(t, dir);
  const err = await startRejection(second);
  t.ok(isHostError(err), 'a HostError');
  if (!isHostError(err)) return;
  t.equal(err.code, 'STORE_LOCKED');
  t.match(err.message, new RegExp(`pid ${process.pid} on host ${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'names the holder');
  t.match(err.details, { dir, pid: process.pid, host: hostname() });
  t.equal(err.statusCode, 409);

  // The refused host touched nothing: the first one still writes, and what it wrote is there after a restart.
  const after = await first.trigger('echo', { params: { n: 2 } });
  t.match(await first.wait(after.runId), { status: 'succeeded', result: { n: 2 } });
  await first.stop();

  const third = hostOn(t, dir);
  await third.start();
  const ids = (await third.runs()).items.map((r) => r.id);
  t.ok(ids.includes(before.runId) && ids.includes(after.runId), 'both runs listed after the restart');
  t.same(third.storeHealth().damage, [], 'the lock file is not read as a store file: no damage');
  t.ok(readdirSync(dir).includes(LOCK_FILE));
  const holder = JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number };
  t.equal(holder.pid, process.pid, 'the holder wrote its name');
  await third.stop();
  t.equal(readFileSync(path.join(dir, LOCK_FILE), 'utf8'), '', 'emptied at release: no name left for a process that let go');
});

t.test('jobhost.lock removed while a host runs ("a stale lock"): a second host still refuses, nothing acknowledged is lost', async (t) => {
  const dir = tempDir(t);
  const first = hostOn(t, dir);
  await first.start();
  const before = await first.trigger('echo', { params: { n: 1 } });
  await first.wait(before.runId);
  rmSync(path.join(dir, LOCK_FILE));

  const second = hostOn(t, dir);
  const err = await startRejection(second);
  t.match(err, { code: 'STORE_LOCKED', message: /is in use by another process, which still writes to journal-\d+\.ndjson \(its jobhost\.lock was removed\)/ });
  t.ok(
    readdirSync(dir).some((f) => /^journal-\d+\.ndjson$/.test(f)),
    "the first host's journal is still there",
  );

  const after = await first.trigger('echo', { params: { n: 2 } });
  t.match(await first.wait(after.runId), { status: 'succeeded' });
  await first.stop();
  const third = hostOn(t, dir);
  await third.start();
  const ids = (await third.runs()).items.map((r) => r.id);
  t.ok(ids.includes(before.runId) && ids.includes(after.runId), 'both acknowledged runs are there after a restart');
  await third.stop();
});

t.test('two stores opening the same directory at the same moment: exactly one wins', async (t) => {
  const dir = tempDir(t);
  const logger = silentLogger();
  const clock = createManualClock(0);
  const stores = Array.from({ length: 8 }, () => createStore({ dir, clock, logger }));
  const results = await Promise.allSettled(stores.map((s) => s.open()));
  const won = results.filter((r) => r.status === 'fulfilled');
  t.equal(won.length, 1, 'one store opened');
  for (const r of results) {
    if (r.status === 'rejected') t.equal((r.reason as { code?: string }).code, 'STORE_LOCKED');
  }
  await Promise.all(stores.filter((_, i) => results[i]!.status === 'fulfilled').map((s) => s.close()));
  const again = createStore({ dir, clock, logger });
  await again.open();
  await again.close();
  t.pass('the directory is free again once the winner closed');
});

t.test('an in-memory store takes no lock', async (t) => {
  const dir = tempDir(t);
  const a = hostOn(t, dir, { memory: true });
  const b = hostOn(t, dir, { memory: true });
  await a.start();
  await b.start();
  t.same(readdirSync(dir), [], 'nothing written to the directory');
});
