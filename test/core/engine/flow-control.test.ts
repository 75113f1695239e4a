import t, { type Test } from 'tap';
import { parseConfig } from '../../../core/contract/config.js';
import { startHost, until } from '../../helpers.js';

/**
 * `rateLimit` and `debounce` (SPEC §13) on the local backend, on the injected clock: starts per
 * window counted as BullMQ's limiter counts them, held runs started when the window closes, and
 * triggers merged into one debounced run with the last trigger's params.
 */

const codeOf = (fn: () => unknown): { code?: string; message?: string; details?: Record<string, unknown> } => {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message?: string };
  }
  return {};
};

t.test('rateLimit: at most max starts per window; the others wait and start when the window closes', async (t) => {
  const h = await startHost(t);
  const started: number[] = [];
  h.host.register({ name: 'limited', concurrency: 100, rateLimit: { max: 2, per: '10s' }, handler: () => void started.push(h.clock.now()) });
  const t0 = h.clock.now();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await h.host.trigger('limited', { params: { i } })).runId);
  await h.clock.advance(0);
  t.equal(started.length, 2, 'two start in the first window');
  t.equal(h.of('run.skipped').length, 0, 'none is refused');
  const view = h.host.job('limited')!;
  t.same(view.rateLimit, { max: 2, perMs: 10_000, waiting: 3 }, 'GET /jobs/:name shows the limit and the runs it holds');
  await h.clock.advance(9_999);
  t.equal(started.length, 2, 'nothing more before the window closes');
  await h.clock.advance(1);
  t.equal(started.length, 4, 'the window closed: the next two start');
  t.same(
    started.map((at) => at - t0),
    [0, 0, 10_000, 10_000],
  );
  await h.clock.advance(10_000);
  t.equal(started.length, 5);
  for (const id of ids) t.equal((await h.host.wait(id)).status, 'succeeded');
  t.equal(h.host.job('limited')!.rateLimit!.waiting, 0);
  // A window opens at the first start after the last one closed: a start 25 s later opens a new one.
  await h.clock.advance(25_000);
  await h.host.trigger('limited');
  await h.clock.advance(0);
  t.equal(started.length, 6);
});

t.test('rateLimit: each attempt is a start (a retry waits for the window like a new run)', async (t) => {
  const h = await startHost(t);
  let calls = 0;
  h.host.register({
    name: 'flaky',
    rateLimit: { max: 1, per: '1m' },
    retry: { attempts: 2, delay: '1s', backoff: 'fixed', jitter: 0 },
    handler: () => {
      calls++;
      if (calls === 1) throw new Error('first fails');
      return null;
    },
  });
  const { runId } = await h.host.trigger('flaky');
  await h.clock.advance(0);
  t.equal(calls, 1);
  await h.clock.advance(30_000);
  t.equal(calls, 1, 'the retry is due after 1s but the window holds it');
  await h.clock.advance(30_000);
  t.equal(calls, 2, 'it starts when the window closes');
  t.equal((await h.host.wait(runId)).status, 'succeeded');
});

t.test('rateLimit: a config edit that lifts the limit starts the held runs at once; canceled held runs never start', async (t) => {
  const h = await startHost(t);
  const started: unknown[] = [];
  h.host.register({ name: 'held', concurrency: 10, rateLimit: { max: 1, per: '1h' }, handler: (ctx: { params: unknown }) => void started.push(ctx.params) });
  await h.host.trigger('held', { params: { n: 1 } });
  const second = await h.host.trigger('held', { params: { n: 2 } });
  await h.host.trigger('held', { params: { n: 3 } });
  await h.clock.advance(0);
  t.equal(started.length, 1);
  await h.host.cancel(second.runId);
  t.equal(h.host.job('held')!.rateLimit!.waiting, 1, 'the canceled run is not counted');
  h.host.applyConfig({ jobs: { held: { rateLimit: null } } });
  await h.clock.advance(0);
  t.same(started, [{ n: 1 }, { n: 3 }], 'the held run starts once the limit is gone; the canceled one never');
  t.equal(h.host.job('held')!.rateLimit, null);
});

t.test('rateLimit: a config edit of `per` moves the open window: a shorter one releases the held runs when it closes, not the old one', async (t) => {
  const h = await startHost(t);
  const started: number[] = [];
  h.host.register({ name: 'paced', concurrency: 10, rateLimit: { max: 1, per: '60s' }, handler: () => void started.push(h.clock.now()) });
  const t0 = h.clock.now();
  for (let i = 0; i < 3; i++) await h.host.trigger('paced');
  await h.clock.advance(2000);
  t.same(started, [t0], 'one start, two held');
  h.host.applyConfig({ jobs: { paced: { rateLimit: { max: 1, per: '5s' } } } });
  await h.clock.advance(3000);
  t.same(started, [t0, t0 + 5000], 'the window opened at t0 closes 5 s after it, as the edit says');
  await h.clock.advance(5000);
  t.same(started, [t0, t0 + 5000, t0 + 10_000]);
  // A window closed already stays closed when `per` grows: the next start opens a new one at once.
  await h.clock.advance(20_000);
  h.host.applyConfig({ jobs: { paced: { rateLimit: { max: 1, per: '60s' } } } });
  await h.host.trigger('paced');
  await h.clock.advance(0);
  t.equal(started.length, 4, 'started at once');
});

t.test('debounce: triggers within the window become one run with the last params, started once the window is quiet', async (t) => {
  const h = await startHost(t);
  const got: unknown[] = [];
  h.host.register({ name: 'settles', debounce: '30s', handler: (ctx: { params: unknown }) => void got.push(ctx.params) });
  const a = await h.host.trigger('settles', { params: { v: 1 } });
  await h.clock.advance(20_000);
  const b = await h.host.trigger('settles', { params: { v: 2 } });
  await h.clock.advance(20_000);
  const c = await h.host.trigger('settles', { params: { v: 3 } });
  t.equal(b.runId, a.runId, 'every trigger answers with the same run');
  t.equal(c.runId, a.runId);
  t.equal(h.of('run.queued').length, 1, 'run.queued once');
  await h.clock.advance(29_999);
  t.same(got, [], 'not before the window has been quiet for 30s');
  await h.clock.advance(1);
  t.same(got, [{ v: 3 }], 'one run, with the last trigger params');
  const run = await h.host.wait(a.runId);
  t.equal(run.status, 'succeeded');
  // The window closed with that start: the next trigger opens a new one.
  const d = await h.host.trigger('settles', { params: { v: 4 } });
  t.not(d.runId, a.runId);
  await h.clock.advance(30_000);
  t.same(got, [{ v: 3 }, { v: 4 }]);
});

t.test('debounce: each key has its own window; a disabled job refuses as usual', async (t) => {
  const h = await startHost(t);
  const got: unknown[] = [];
  h.host.register({ name: 'keyed', debounce: '10s', overlap: 'allow', handler: (ctx: { params: unknown }) => void got.push(ctx.params) });
  const a1 = await h.host.trigger('keyed', { key: 'a', params: { k: 'a', n: 1 } });
  const b1 = await h.host.trigger('keyed', { key: 'b', params: { k: 'b', n: 1 } });
  const a2 = await h.host.trigger('keyed', { key: 'a', params: { k: 'a', n: 2 } });
  t.equal(a2.runId, a1.runId);
  t.not(b1.runId, a1.runId);
  await h.clock.advance(10_000);
  t.same(
    got.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    [
      { k: 'a', n: 2 },
      { k: 'b', n: 1 },
    ],
  );
  await h.host.trigger('keyed', { key: 'a' });
  await h.host.disable('keyed');
  await t.rejects(h.host.trigger('keyed', { key: 'a' }), { code: 'SKIPPED', details: { reason: 'disabled' } });
});

t.test('debounce: a window outlives a restart; the trigger after it merges into the waiting run', async (t) => {
  const first = await startHost(t);
  const plugin = { name: 'settles', debounce: '30s', handler: (ctx: { params: unknown }) => ctx.params };
  first.host.register(plugin);
  const a = await first.host.trigger('settles', { key: 'k', params: { v: 1 } });
  const other = await first.host.trigger('settles', { key: 'other', params: { v: 0 } });
  await first.host.stop({ graceMs: 0 });
  const h = await startHost(t, { dir: first.dir, clock: first.clock });
  h.host.register(plugin);
  await h.clock.advance(10_000);
  const b = await h.host.trigger('settles', { key: 'k', params: { v: 2 } });
  t.equal(b.runId, a.runId, 'merged into the run the window opened before the restart');
  t.equal(h.of('run.queued').length, 0, 'no new run');
  await h.clock.advance(29_999);
  t.equal((await h.host.run(a.runId))?.status, 'queued', 'its time moved: 30s from the last trigger');
  await h.clock.advance(1);
  t.match(await h.host.wait(a.runId), { status: 'succeeded', result: { v: 2 } }, 'one run, with the last params');
  t.match(await h.host.wait(other.runId), { status: 'succeeded', result: { v: 0 } }, 'the other key kept its own run');
});

t.test('bad input: the plugin error and the config error name the field', async (t) => {
  const h = await startHost(t);
  t.match(
    codeOf(() => h.host.register({ name: 'zero', rateLimit: { max: 0, per: '1s' }, handler: () => null })),
    {
      code: 'PLUGIN_INVALID',
      message: /^rateLimit\.max: /,
    },
  );
  t.match(
    codeOf(() => h.host.register({ name: 'badper', rateLimit: { max: 1, per: 'soon' }, handler: () => null })),
    {
      code: 'INVALID_DURATION',
      message: /^rateLimit\.per: /,
    },
  );
  t.match(
    codeOf(() => h.host.register({ name: 'baddeb', debounce: '5 minutes', handler: () => null })),
    { code: 'INVALID_DURATION', message: /^debounce: / },
  );
  t.match(
    codeOf(() => h.host.register({ name: 'skips', debounce: '5s', overlap: 'skip', handler: () => null })),
    {
      code: 'PLUGIN_INVALID',
      message: /^debounce: cannot be combined with the plugin's overlap: 'skip'/,
      details: { path: 'debounce' },
    },
  );
  // The config's debounce on a plugin that skips: the config file's error, naming its path.
  h.host.register({ name: 'skipper', overlap: 'skip', handler: () => null });
  t.match(
    codeOf(() => h.host.applyConfig({ jobs: { skipper: { debounce: '5s' } } })),
    {
      code: 'CONFIG_INVALID',
      message: /^jobs\.skipper\.debounce: cannot be combined with the plugin's overlap: 'skip'/,
      details: { path: 'jobs.skipper.debounce' },
    },
  );
  t.match(
    codeOf(() => parseConfig({ jobs: { x: { rateLimit: { max: 0.5, per: '1s' } } } })),
    { message: /^jobs\.x\.rateLimit\.max: / },
  );
  t.match(
    codeOf(() => parseConfig({ jobs: { x: { debounce: 'later' } } })),
    { code: 'INVALID_DURATION', message: /^jobs\.x\.debounce: / },
  );
  t.match(
    codeOf(() => parseConfig({ jobs: { x: { rateLimit: { max: 1, per: '1s', burst: 2 } } } })),
    { message: /^jobs\.x\.rateLimit: unknown key "burst"/ },
  );
  const c = parseConfig({ jobs: { x: { rateLimit: { max: 3, per: '1m' }, debounce: '2s' } } });
  t.same(c.jobs['x'], { rateLimit: { max: 3, per: 60_000 }, debounce: 2000 });
});

t.test('debounce: a merge takes the last trigger with what its params came from (source, event, after parent)', async (t) => {
  const h = await startHost(t);
  h.host.register({ name: 'extract', handler: (ctx: { params: unknown }) => ctx.params });
  h.host.register({ name: 'load', after: ['extract'], debounce: '10s', on: ['files.ready'], handler: (ctx: { params: unknown }) => ctx.params });
  const e1 = await h.host.trigger('extract', { params: { n: 1 } });
  await h.clock.advance(0);
  const e2 = await h.host.trigger('extract', { params: { n: 2 } });
  await h.clock.advance(0);
  t.equal((await h.host.wait(e2.runId)).status, 'succeeded');
  const chained = h.of('run.queued').filter((e) => e.data.job === 'load');
  t.equal(chained.length, 1, 'both ends fed one debounced run');
  const id = chained[0]!.data.runId;
  await h.clock.advance(10_000);
  const run = await h.host.wait(id);
  t.match(run.params, { runId: e2.runId, job: 'extract', status: 'succeeded', result: { n: 2 } }, 'the last parent params');
  t.same(run.after, { runId: e2.runId, job: 'extract' }, 'and the same parent in `after`');
  t.not(run.after!.runId, e1.runId);

  // An app event merged into a run an `api` trigger opened: the run says it came from the event.
  const first = await h.host.trigger('load', { params: { from: 'api' } });
  await h.host.publish('files.ready', { from: 'event' });
  await h.clock.advance(10_000);
  const merged = await h.host.wait(first.runId);
  t.match(merged, { source: 'event', event: 'files.ready', params: { from: 'event' } });
  t.notOk(merged.after, 'no parent: the last trigger had none');
});

t.test('debounce: a run waiting for its retry has had its time; a trigger then opens a new window and a new run', async (t) => {
  const h = await startHost(t);
  const got: Array<{ attempt: number; params: unknown }> = [];
  h.host.register({
    name: 'flaky',
    debounce: '10s',
    retry: { attempts: 2, backoff: 'fixed', delay: '1m', jitter: 0 },
    handler: (ctx: { attempt: number; params: unknown }) => {
      got.push({ attempt: ctx.attempt, params: ctx.params });
      if (ctx.attempt === 1) throw new Error('first time');
      return 'ok';
    },
  });
  const first = await h.host.trigger('flaky', { params: { v: 1 } });
  await h.clock.advance(10_000);
  await until(() => h.of('run.retrying').length === 1, 5000, 'the first attempt failed');
  const next = await h.host.trigger('flaky', { params: { v: 2 } });
  t.not(next.runId, first.runId, 'not merged into the run waiting for its retry');
  await h.clock.advance(60_000);
  t.equal((await h.host.wait(first.runId)).status, 'succeeded');
  await h.clock.advance(10_000);
  t.equal((await h.host.wait(next.runId)).status, 'succeeded');
  t.same(
    got.filter((g) => g.attempt === 2).map((g) => g.params),
    [{ v: 1 }, { v: 2 }],
    "each run's retry ran with its own params",
  );
});

/** A host with a job debounced 10 s that fails when its params say so, and two of its runs failed (with `key`, if given). */
async function twoFailedDebounced(t: Test, name: string, key?: string): Promise<{ h: Awaited<ReturnType<typeof startHost>>; failed: string[] }> {
  const h = await startHost(t);
  h.host.register({
    name,
    debounce: '10s',
    handler: (ctx: { params: { fail?: boolean } }) => {
      if (ctx.params.fail) throw new Error('no');
      return 'ok';
    },
  });
  const failed: string[] = [];
  for (let i = 0; i < 2; i++) {
    failed.push((await h.host.trigger(name, { ...(key !== undefined && { key }), params: { fail: true, i } })).runId);
    await h.clock.advance(10_000);
    t.equal((await h.host.wait(failed[i]!)).status, 'failed');
  }
  return { h, failed };
}

t.test('debounce: replays are runs of their own, never merged (a bulk retry replays every failed run)', async (t) => {
  const { h } = await twoFailedDebounced(t, 'settles');
  const waiting = await h.host.trigger('settles', { params: { i: 'waiting' } });
  const bulk = await h.host.retryFailed({ job: 'settles' });
  t.equal(bulk.touched, 2);
  const replays = bulk.runs.map((r) => r.newRunId!);
  t.equal(new Set([...replays, waiting.runId]).size, 3, 'two replays, apart from each other and from the waiting run');
  for (const [i, id] of replays.entries()) {
    const run = (await h.host.run(id))!;
    t.equal(run.retryOf, bulk.runs[i]!.runId, 'each replays its own run');
  }
  t.match(await h.host.run(waiting.runId), { params: { i: 'waiting' }, retryOf: null }, 'the waiting run kept its own trigger');
  await h.clock.advance(10_000);
  t.equal((await h.host.wait(waiting.runId)).status, 'succeeded');
});

t.test('debounce: a replay of a keyed run is not refused by the key (it names a window, which a replay does not join)', async (t) => {
  const { h, failed } = await twoFailedDebounced(t, 'keyed', 'k');
  await h.host.trigger('keyed', { key: 'k', params: { i: 'open window' } });
  const one = await h.host.retry(failed[0]!);
  t.ok(one.runId, 'a replay while the key has an open window');
  const bulk = await h.host.retryFailed({ job: 'keyed' });
  // The second failed run, and the first's replay, which failed too (its params say so): both replayed, none refused.
  t.equal(bulk.touched, 2);
  t.same(bulk.errors, [], 'no SKIPPED duplicate');
});
