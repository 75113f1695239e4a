import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import type { Run } from '../../../core/contract/run.js';
import { Bus } from '../../../core/engine/bus.js';
import { SeriesIndex } from '../../../core/engine/series.js';
import { gate, startHost, tempDir } from '../../helpers.js';

/**
 * The series index: counts as runs finish, percentiles (exact for a few runs, within 2% for many),
 * the backlog at each bucket end, and history read back after a restart.
 */

const MINUTE = 60_000;

t.test('after a restart the charts are filled from history (without the backlog, which history does not hold)', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({
    name: 'mixed',
    handler: (ctx: JobContext<{ fail?: boolean }>) => {
      if (ctx.params.fail) throw new Error('no');
    },
  });
  const t0 = a.clock.now();
  for (let i = 0; i < 3; i++) await a.host.wait((await a.host.trigger('mixed')).runId);
  await a.clock.advance(20 * MINUTE);
  await a.host.wait((await a.host.trigger('mixed', { params: { fail: true } })).runId);
  await a.host.stop();

  await a.clock.advance(5 * MINUTE);
  const b = await startHost(t, { dir, clock: a.clock }); // no plugin for `mixed` now: its history still counts
  const hour = (
    await waitFor(
      () => b.host.series('1h'),
      (s) => s.buckets.some((x) => x.failed > 0),
    )
  ).buckets;
  const at = (ms: number) => hour.find((x) => x.start === new Date(ms).toISOString())!;
  t.match(at(t0), { succeeded: 3, failed: 0, queued: null }, 'before the restart: counts, no backlog');
  t.match(at(t0 + 20 * MINUTE), { succeeded: 0, failed: 1, queued: null });
  t.match(hour.at(-1), { queued: 0 }, 'since the restart the backlog is known');
  const day = b.host.series('24h', 'mixed').buckets; // 15-minute buckets: 12:00 and 12:15
  t.match(day.at(-2), { succeeded: 3, failed: 0 });
  t.match(day.at(-1), { succeeded: 0, failed: 1 });
  t.throws(() => b.host.series('1h', 'never-seen'), { code: 'JOB_NOT_FOUND' });
});

/** The series, once `ready` says the background read is done (a bounded wait). */
async function waitFor<T>(read: () => T, ready: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const value = read();
    if (ready(value)) return value;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('the history was not read back');
}

t.test('many runs in a bucket: p50 and p95 within 2% of the exact values', async (t) => {
  const { host, clock } = await startHost(t);
  let release = gate();
  host.register({ name: 'timed', concurrency: 1, handler: () => release.promise });
  // 200 runs of 1..200 × 37 ms, one after another: p50 = 100 × 37, p95 = 190 × 37.
  for (let k = 1; k <= 200; k++) {
    const { runId } = await host.trigger('timed');
    await clock.advance(0);
    await new Promise((r) => setImmediate(r));
    await clock.advance(k * 37);
    release.open();
    await host.wait(runId);
    release = gate();
  }
  const bucket = host.series('7d').buckets.at(-1)!;
  t.equal(bucket.succeeded, 200);
  t.ok(Math.abs(bucket.p50Ms! - 3700) <= 3700 * 0.02, `p50 ${bucket.p50Ms}`);
  t.ok(Math.abs(bucket.p95Ms! - 7030) <= 7030 * 0.02, `p95 ${bucket.p95Ms}`);
});

t.test('the backlog at the end of each bucket, carried over buckets where nothing happened', async (t) => {
  const { host, clock } = await startHost(t);
  host.register({ name: 'later', handler: () => 1 });
  const t0 = clock.now();
  await host.trigger('later', { delay: '30m' });
  await host.trigger('later', { delay: '30m' });
  await clock.advance(10 * MINUTE);
  await host.trigger('later', { delay: '20m' });
  await clock.advance(5 * MINUTE);
  const buckets = host.series('1h').buckets;
  const at = (ms: number) => buckets.find((x) => x.start === new Date(ms).toISOString())!;
  t.equal(at(t0 - MINUTE).queued, null, 'unknown before the host was watching');
  t.equal(at(t0).queued, 2);
  t.equal(at(t0 + 5 * MINUTE).queued, 2, 'a quiet bucket keeps the last value');
  t.equal(at(t0 + 10 * MINUTE).queued, 3);
  t.equal(buckets.at(-1)!.queued, 3);
  await clock.advance(20 * MINUTE);
  await host.flush();
  t.equal(host.series('1h').buckets.at(-1)!.queued, 0, 'they ran');
  const ran = host.series('1h', 'later').buckets.filter((x) => x.succeeded > 0);
  t.same(
    ran.map((x) => [x.start, x.succeeded]),
    [[new Date(t0 + 30 * MINUTE).toISOString(), 3]],
    'in the bucket of their runAt',
  );
});

t.test('a host that hears the other hosts only from when it follows them reads history back up to then: no run left out', async (t) => {
  const clock = createManualClock(Date.UTC(2026, 0, 1, 12));
  const bus = new Bus({ clock, logger: silentLogger() });
  const index = new SeriesIndex({ bus, clock, logger: silentLogger(), waiting: () => 0 });
  t.teardown(() => index.close());
  // Another host's run ends after the index was made, before this host followed the cluster's stream.
  const made = clock.now();
  await clock.advance(2000);
  const followed = clock.now();
  index.watchedFrom(followed);
  index.watchedFrom(made); // never earlier than it was
  const run = (id: string, endedAt: number) =>
    ({
      id,
      job: 'shared',
      status: 'succeeded',
      createdAt: new Date(endedAt - 100).toISOString(),
      endedAt: new Date(endedAt).toISOString(),
      durationMs: 100,
    }) as Run;
  const history: Run[] = [run('b', made + 1000), run('a', made - 60_000)];
  const counted = await index.backfill(async () => ({ items: history }));
  t.equal(counted, 2, 'the run that ended between the two is read back too');
  t.equal(index.series('1h', 'shared').watchingSince, new Date(followed).toISOString());
  t.equal(
    index.series('1h', 'shared').buckets.reduce((n, b) => n + b.succeeded, 0),
    2,
  );
});
