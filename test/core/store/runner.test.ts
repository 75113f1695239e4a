import t from 'tap';
import type { JobContext } from '../../../core/contract/plugin.js';
import { retryDelay } from '../../../core/contract/retry.js';
import { gate, startHost } from '../../helpers.js';

const noop = (): undefined => undefined;

t.test('global concurrency caps running runs across jobs', async (t) => {
  const { host } = await startHost(t, { config: { concurrency: 2 } });
  const release = gate();
  let peak = 0;
  let now = 0;
  const handler = async (): Promise<void> => {
    peak = Math.max(peak, ++now);
    await release.promise;
    now--;
  };
  host.register({ name: 'a', concurrency: 10, handler });
  host.register({ name: 'b', concurrency: 10, handler });
  const ids = await Promise.all([1, 2, 3].flatMap(() => [host.trigger('a'), host.trigger('b')]));
  t.equal(host.stats().totals.running, 2);
  t.equal(host.stats().totals.queued, 4);
  release.open();
  await Promise.all(ids.map(({ runId }) => host.wait(runId)));
  t.equal(peak, 2);
});

t.test('per-job concurrency: a saturated job does not block other jobs in the queue', async (t) => {
  const { host } = await startHost(t, { config: { concurrency: 4 } });
  const release = gate();
  host.register({ name: 'slow', concurrency: 1, handler: () => release.promise });
  host.register({ name: 'fast', handler: noop });
  const slow = await Promise.all([host.trigger('slow'), host.trigger('slow'), host.trigger('slow')]);
  const fast = await host.trigger('fast');
  t.equal((await host.wait(fast.runId)).status, 'succeeded', 'fast ran past the parked slow runs');
  t.equal(host.job('slow')!.counts.running, 1);
  t.equal(host.job('slow')!.counts.queued, 2);
  release.open();
  for (const { runId } of slow) t.equal((await host.wait(runId)).status, 'succeeded');
});

t.test('weighted queues: with every queue backed up, dispatch follows 6/2/1 within ±10% over 900 runs', async (t) => {
  const { host, of } = await startHost(t, { store: 'memory', config: { concurrency: 1, queues: { critical: 6, default: 2, low: 1 } } });
  for (const queue of ['critical', 'default', 'low']) host.register({ name: `on-${queue}`, queue, concurrency: 1, handler: noop });
  host.pause();
  const all: Promise<{ runId: string }>[] = [];
  for (let i = 0; i < 900; i++) for (const queue of ['critical', 'default', 'low']) all.push(host.trigger(`on-${queue}`));
  await Promise.all(all);
  host.resume();
  await host.wait((await all[all.length - 1]!).runId);
  const first = of('run.started').slice(0, 900);
  const share = (job: string): number => first.filter((e) => e.data.job === job).length;
  t.ok(Math.abs(share('on-critical') - 600) <= 60, `critical ${share('on-critical')} ≈ 600`);
  t.ok(Math.abs(share('on-default') - 200) <= 20, `default ${share('on-default')} ≈ 200`);
  t.ok(Math.abs(share('on-low') - 100) <= 10, `low ${share('on-low')} ≈ 100`);
});

t.test('priority within a queue: lower numbers first, FIFO within a priority', async (t) => {
  const { host, of } = await startHost(t, { config: { concurrency: 1 } });
  host.register({ name: 'p', concurrency: 1, handler: noop });
  host.pause();
  const ids: string[] = [];
  for (const priority of [5, 0, -1, 0]) ids.push((await host.trigger('p', { priority })).runId);
  host.resume();
  await host.wait(ids[0]!);
  t.same(
    of('run.started').map((e) => e.data.runId),
    [ids[2], ids[1], ids[3], ids[0]],
  );
});

t.test('delayed runs wait for delay or runAt on the injected clock', async (t) => {
  const { host, clock, of } = await startHost(t);
  host.register({ name: 'later', handler: noop });
  const t0 = clock.now();
  const a = await host.trigger('later', { delay: '10s' });
  const b = await host.trigger('later', { runAt: new Date(t0 + 20_000).toISOString() });
  t.match(of('run.queued')[0]!.data, { delayed: true, runAt: new Date(t0 + 10_000).toISOString() });
  await clock.advance(9_999);
  t.equal(of('run.started').length, 0);
  t.equal(host.stats().totals.delayed, 2);
  await clock.advance(1);
  t.equal((await host.wait(a.runId)).status, 'succeeded');
  t.equal(of('run.started').length, 1);
  await clock.advance(10_000);
  t.equal((await host.wait(b.runId)).startedAt, new Date(t0 + 20_000).toISOString());
  // a runAt in the past runs now
  const c = await host.trigger('later', { runAt: 0 });
  t.equal((await host.wait(c.runId)).status, 'succeeded');
  await t.rejects(host.trigger('later', { runAt: 'not a time' }), { code: 'INVALID_BODY' });
});

t.test('dedup key: skipped with reason duplicate while a run holds the key', async (t) => {
  const { host, of } = await startHost(t);
  const release = gate();
  host.register({ name: 'k', concurrency: 5, handler: () => release.promise });
  const first = await host.trigger('k', { key: 'order-1' });
  await t.rejects(host.trigger('k', { key: 'order-1' }), { code: 'SKIPPED', details: { reason: 'duplicate', runId: first.runId } });
  t.match(of('run.skipped').at(-1)!.data, { job: 'k', reason: 'duplicate', runId: first.runId, source: 'api' });
  const other = await host.trigger('k', { key: 'order-2' });
  t.not(other.runId, first.runId);
  release.open();
  await host.wait(first.runId);
  const again = await host.trigger('k', { key: 'order-1' });
  t.ok(again.runId, 'the key is free once its run finished');
});

t.test('overlap: skip, queue and allow', async (t) => {
  const { host, of } = await startHost(t, { config: { concurrency: 10 } });
  const release = gate();
  let running = 0;
  let peak = 0;
  const handler = async (): Promise<void> => {
    peak = Math.max(peak, ++running);
    await release.promise;
    running--;
  };
  host.register({ name: 'skip', overlap: 'skip', handler });
  const a = await host.trigger('skip');
  await t.rejects(host.trigger('skip'), { code: 'SKIPPED', details: { reason: 'overlap', runId: a.runId } });
  t.equal(of('run.skipped').at(-1)!.data.reason, 'overlap');
  release.open();
  await host.wait(a.runId);

  const release2 = gate();
  let qRunning = 0;
  let qPeak = 0;
  host.register({
    name: 'queue',
    overlap: 'queue',
    concurrency: 3,
    handler: async () => {
      qPeak = Math.max(qPeak, ++qRunning);
      await release2.promise;
      qRunning--;
    },
  });
  const q = await Promise.all([host.trigger('queue'), host.trigger('queue'), host.trigger('queue')]);
  t.equal(host.job('queue')!.counts.running, 1, 'queue: one at a time whatever concurrency says');
  release2.open();
  for (const { runId } of q) await host.wait(runId);
  t.equal(qPeak, 1);

  const release3 = gate();
  let aRunning = 0;
  let aPeak = 0;
  host.register({
    name: 'allow',
    overlap: 'allow',
    concurrency: 2,
    handler: async () => {
      aPeak = Math.max(aPeak, ++aRunning);
      await release3.promise;
      aRunning--;
    },
  });
  const al = await Promise.all([host.trigger('allow'), host.trigger('allow'), host.trigger('allow')]);
  t.equal(host.job('allow')!.counts.running, 2);
  t.equal(host.job('allow')!.counts.queued, 1);
  release3.open();
  for (const { runId } of al) await host.wait(runId);
  t.equal(aPeak, 2);
  t.equal(peak, 1);
});

t.test('cooldown: no new run within the cooldown after the last success', async (t) => {
  const { host, clock } = await startHost(t);
  let fail = true;
  host.register({
    name: 'cool',
    cooldown: '5m',
    handler: () => {
      if (fail) throw new Error('no');
    },
  });
  t.equal((await host.wait((await host.trigger('cool')).runId)).status, 'failed');
  fail = false;
  const second = await host.trigger('cool');
  t.ok(second.runId, 'a failure does not start the cooldown');
  t.equal((await host.wait(second.runId)).status, 'succeeded');
  await clock.advance(60_000);
  await t.rejects(host.trigger('cool'), { code: 'SKIPPED', details: { reason: 'cooldown' }, message: /cooling down until/ });
  await clock.advance(4 * 60_000);
  t.ok((await host.trigger('cool')).runId, 'accepted once the cooldown is over');
});

t.test('once: may succeed once ever; retries and failures do not count', async (t) => {
  const { host } = await startHost(t);
  let attempts = 0;
  host.register({
    name: 'migrate',
    once: true,
    retry: { attempts: 2, delay: 0 },
    handler: () => {
      if (++attempts < 4) throw new Error(`attempt ${attempts}`);
    },
  });
  const first = await host.wait((await host.trigger('migrate')).runId);
  t.equal(first.status, 'failed');
  t.equal(first.attempts.length, 2, 'retries allowed');
  const second = await host.wait((await host.trigger('migrate')).runId);
  t.equal(second.status, 'succeeded');
  await t.rejects(host.trigger('migrate'), { code: 'SKIPPED', details: { reason: 'once', runId: second.id } });
});

t.test('retries: exponential backoff, maxDelay, run.retrying with the next attempt time', async (t) => {
  const { host, clock, of } = await startHost(t);
  host.register({
    name: 'flaky',
    retry: { attempts: 4, backoff: 'exponential', delay: '1s', maxDelay: '3s' },
    handler: (ctx: JobContext) => {
      throw new Error(`fail ${ctx.attempt}`);
    },
  });
  const { runId } = await host.trigger('flaky');
  const done = host.wait(runId);
  const t0 = clock.now();
  await clock.advance(0);
  t.match(of('run.retrying')[0]!.data, {
    runId,
    attempt: 1,
    nextAttempt: 2,
    delayMs: 1000,
    runAt: new Date(t0 + 1000).toISOString(),
    error: { code: 'HANDLER_ERROR', message: 'fail 1' },
  });
  await clock.advance(1000);
  t.match(of('run.retrying')[1]!.data, { attempt: 2, delayMs: 2000 });
  await clock.advance(2000);
  t.match(of('run.retrying')[2]!.data, { attempt: 3, delayMs: 3000 }, 'capped at maxDelay (4s -> 3s)');
  await clock.advance(3000);
  const run = await done;
  t.equal(run.status, 'failed');
  t.same(
    run.attempts.map((a) => a.error?.message),
    ['fail 1', 'fail 2', 'fail 3', 'fail 4'],
  );
  t.same(run.error, { code: 'HANDLER_ERROR', message: 'fail 4' });
  t.equal(of('run.failed').length, 1);
  t.equal(run.durationMs, 6000);
});

t.test('retryDelay: fixed, exponential, cap and jitter', async (t) => {
  const policy = { attempts: 5, backoff: 'exponential' as const, delayMs: 1000, maxDelayMs: 10_000, jitter: 0.2 };
  t.equal(
    retryDelay(policy, 1, () => 0.5),
    1000,
  );
  t.equal(
    retryDelay(policy, 3, () => 0.5),
    4000,
  );
  t.equal(
    retryDelay(policy, 10, () => 0.5),
    10_000,
  );
  t.equal(
    retryDelay(policy, 1, () => 0),
    800,
  );
  t.equal(
    retryDelay(policy, 1, () => 1),
    1200,
  );
  t.equal(
    retryDelay(policy, 10, () => 1),
    10_000,
    'jitter never passes maxDelay',
  );
  t.equal(
    retryDelay({ ...policy, backoff: 'fixed' }, 4, () => 0.5),
    1000,
  );
  const spread = new Set(Array.from({ length: 50 }, () => retryDelay(policy, 2, Math.random)));
  t.ok(spread.size > 10, 'jitter spreads delays');
  for (const d of spread) t.ok(d >= 1600 && d <= 2400);
});

t.test('timeout: aborts the signal and fails with TIMEOUT even when the handler ignores it; a late result is ignored', async (t) => {
  const { host, clock } = await startHost(t);
  const late = gate<string>();
  let signal: AbortSignal | undefined;
  host.register({
    name: 'stubborn',
    timeout: '1s',
    handler: async (ctx: JobContext) => {
      signal = ctx.signal;
      return late.promise; // ignores the signal
    },
  });
  const { runId } = await host.trigger('stubborn');
  await clock.advance(999);
  t.equal((await host.run(runId))!.status, 'running');
  await clock.advance(1);
  const run = await host.wait(runId);
  t.equal(run.status, 'failed');
  t.equal(run.error?.code, 'TIMEOUT');
  t.equal(signal?.aborted, true);
  t.equal((signal?.reason as { code?: string } | undefined)?.code, 'TIMEOUT');
  late.open('too late');
  await clock.advance(10);
  const after = await host.run(runId);
  t.equal(after!.status, 'failed');
  t.equal(after!.result, null);
});

t.test('cancel: queued and running runs; finished and unknown ones are refused', async (t) => {
  const { host, of } = await startHost(t);
  host.register({
    name: 'long',
    handler: (ctx: JobContext) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error))),
  });
  host.pause();
  const queued = await host.trigger('long');
  const c1 = await host.cancel(queued.runId);
  t.equal(c1.status, 'canceled');
  host.resume();
  const running = await host.trigger('long');
  await new Promise((r) => setImmediate(r));
  t.equal((await host.run(running.runId))!.status, 'running');
  const c2 = await host.cancel(running.runId);
  t.equal(c2.status, 'canceled');
  t.equal(c2.attempts[0]!.error?.code, 'CANCELED');
  t.equal(of('run.canceled').length, 2);
  t.equal(of('run.started').length, 1, 'the canceled queued run never started');
  await t.rejects(host.cancel(running.runId), { code: 'RUN_FINISHED' });
  await t.rejects(host.cancel('nope'), { code: 'RUN_NOT_FOUND' });
  // retry replays a canceled run as a new run
  const replay = await host.retry(running.runId);
  t.not(replay.runId, running.runId);
  t.match(await host.run(replay.runId), { source: 'retry', retryOf: running.runId });
  await t.rejects(host.retry(replay.runId), { code: 'RUN_NOT_RETRYABLE' });
  await host.cancel(replay.runId);
});

t.test('progress: a failed attempt keeps its progress until the next attempt starts from zero', async (t) => {
  const { host, clock } = await startHost(t);
  const second = gate();
  host.register({
    name: 'steps',
    retry: { attempts: 2, delay: '1s', jitter: 0 },
    handler: async (ctx: JobContext) => {
      if (ctx.attempt === 1) {
        ctx.progress(0.46, 'step 23 of 50');
        throw new Error('lost the connection');
      }
      await second.promise;
    },
  });
  const { runId } = await host.trigger('steps');
  await clock.advance(0);
  t.match(await host.run(runId), { status: 'queued', progress: { fraction: 0.46, text: 'step 23 of 50' } });
  await clock.advance(1000);
  t.match(await host.run(runId), { status: 'running', progress: { fraction: 0, text: null }, attempts: [{ n: 1 }, { n: 2 }] });
  second.open();
  t.equal((await host.wait(runId)).status, 'succeeded');
});

t.test('progress: clamped to 0..1, run.progress throttled to ~10 per second per run', async (t) => {
  const { host, clock, of } = await startHost(t);
  const step = gate();
  host.register({
    name: 'prog',
    handler: async (ctx: JobContext) => {
      ctx.progress(1.7, 'too far');
      for (let i = 0; i < 50; i++) ctx.progress(i / 100, `step ${i}`);
      await step.promise;
      ctx.progress(-3);
    },
  });
  const { runId } = await host.trigger('prog');
  await clock.advance(0);
  t.same(
    of('run.progress').map((e) => e.data.fraction),
    [1],
    'first call emits at once, the burst waits',
  );
  await clock.advance(100);
  t.same(
    of('run.progress').map((e) => [e.data.fraction, e.data.text]),
    [
      [1, 'too far'],
      [0.49, 'step 49'],
    ],
    'one trailing event carries the newest value',
  );
  step.open();
  await host.wait(runId);
  const run = (await host.run(runId))!;
  t.same(run.progress, { fraction: 0, text: 'step 49' }, 'clamped at 0, text kept');

  // sustained: 1000 calls over one second yield about ten events
  host.register({
    name: 'busy',
    handler: async (ctx: JobContext) => {
      for (let ms = 0; ms < 1000; ms += 1) {
        ctx.progress(ms / 1000);
        await clock.advance(1);
      }
    },
  });
  const before = of('run.progress').length;
  await host.wait((await host.trigger('busy')).runId);
  const n = of('run.progress').length - before;
  t.ok(n >= 9 && n <= 11, `${n} progress events in one second`);
});

t.test('handler misbehaviour fails the attempt and never stops the host', async (t) => {
  // Strays (a rejection nobody awaited, a throw in a timer) reach the process: its handlers trace them to their attempt.
  const { host, clock } = await startHost(t, { processHandlers: true });
  const cases: Array<[string, (ctx: JobContext) => unknown, string, RegExp]> = [
    [
      'throws',
      () => {
        throw new TypeError('bad type');
      },
      'TypeError',
      /bad type/,
    ],
    ['rejects', async () => Promise.reject(new Error('nope')), 'HANDLER_ERROR', /nope/],
    [
      'throws-string',
      () => {
        throw 'just a string';
      },
      'HANDLER_ERROR',
      /non-Error thrown: just a string/,
    ],
    ['rejects-object', () => Promise.reject({ weird: true }), 'HANDLER_ERROR', /non-Error thrown: \{"weird":true\}/],
    [
      'coded',
      () => {
        throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      },
      'ECONNREFUSED',
      /refused/,
    ],
    ['bigint', () => ({ n: 1n }), 'RESULT_NOT_SERIALIZABLE', /cannot be stored as JSON/],
    [
      'circular',
      () => {
        const o: Record<string, unknown> = {};
        o['self'] = o;
        return o;
      },
      'RESULT_NOT_SERIALIZABLE',
      /circular/i,
    ],
  ];
  for (const [name, handler, code, message] of cases) {
    host.register({ name, handler });
    const run = await host.wait((await host.trigger(name)).runId);
    t.equal(run.status, 'failed', name);
    t.match(run.error, { code, message }, name);
  }

  host.register({ name: 'hangs', timeout: '2s', handler: () => new Promise(() => undefined) });
  const hang = await host.trigger('hangs');
  await clock.advance(2000);
  t.match(await host.wait(hang.runId), { status: 'failed', error: { code: 'TIMEOUT' } });

  host.register({
    name: 'stray-rejection',
    handler: async () => {
      void Promise.reject(new Error('left behind'));
      await new Promise((r) => setTimeout(r, 20));
      return 'finished anyway';
    },
  });
  t.match(await host.wait((await host.trigger('stray-rejection')).runId), { status: 'failed', error: { code: 'UNHANDLED_REJECTION', message: 'left behind' } });

  host.register({
    name: 'timer-throws',
    handler: async () => {
      setTimeout(() => {
        throw new Error('thrown in a timer');
      }, 1);
      await new Promise((r) => setTimeout(r, 30));
    },
  });
  t.match(await host.wait((await host.trigger('timer-throws')).runId), {
    status: 'failed',
    error: { code: 'UNCAUGHT_EXCEPTION', message: 'thrown in a timer' },
  });

  host.register({ name: 'fine', handler: () => ({ ok: true }) });
  t.match(await host.wait((await host.trigger('fine')).runId), { status: 'succeeded', result: { ok: true } });
  t.equal(host.state, 'running');
});

t.test('the stored result is a JSON copy of what the handler returned', async (t) => {
  const { host } = await startHost(t);
  const result = { list: [1, 2], when: new Date(0), skip: undefined as unknown };
  host.register({ name: 'copy', handler: () => result });
  const run = await host.wait((await host.trigger('copy')).runId);
  result.list.push(3);
  t.same(run.result, { list: [1, 2], when: '1970-01-01T00:00:00.000Z' });
});

t.test('timeouts of many attempts fire each at its own deadline, from one timer', async (t) => {
  const { host, clock } = await startHost(t, { config: { concurrency: 10 } });
  for (const [name, timeout] of [
    ['t3', '3s'],
    ['t1', '1s'],
    ['t2', '2s'],
  ] as const) {
    host.register({ name, timeout, handler: () => new Promise(() => undefined) });
  }
  host.register({ name: 'quick', timeout: '500ms', handler: noop });
  const ids = Object.fromEntries(await Promise.all(['t3', 't1', 't2', 'quick'].map(async (n) => [n, (await host.trigger(n)).runId] as const)));
  const status = async (n: string): Promise<string> => (await host.run(ids[n]!))!.status;
  t.equal(await status('quick'), 'succeeded', 'an attempt that ends leaves the deadlines');
  await clock.advance(1000);
  t.same([await status('t1'), await status('t2'), await status('t3')], ['failed', 'running', 'running']);
  await clock.advance(1000);
  t.same([await status('t2'), await status('t3')], ['failed', 'running']);
  await clock.advance(1000);
  t.equal(await status('t3'), 'failed');
  // The one left is the stall watchdog's look, once a second (gone at stop).
  t.equal(clock.pending(), 1, 'no timer left for attempts once no attempt runs');
});

t.test('the timeout timer outlives its attempt only until stop()', async (t) => {
  const { host, clock } = await startHost(t);
  host.register({ name: 'j', handler: noop }); // default timeout: 5m
  await host.wait((await host.trigger('j')).runId);
  // Besides the stall watchdog's once-a-second look.
  t.equal(clock.pending(), 2, 'one timeout timer, armed for the ended attempt, not re-armed per run');
  await host.wait((await host.trigger('j')).runId);
  t.equal(clock.pending(), 2);
  await host.stop();
  t.equal(clock.pending(), 0);
});
