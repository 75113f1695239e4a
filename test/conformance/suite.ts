import type { Test } from 'tap';
import type { PluginDefinition } from '../../core/contract/plugin.js';
import { gate } from '../helpers.js';
import { type BackendUnderTest, codeOf, final, ms } from './subject.js';

/**
 * The guarantees written on the `Backend` contract (core/contract/backend.ts), once, run against
 * every backend through the library API (`createHost`, plugins registered in code): admission,
 * ordering, retries and backoff, timeouts, cancel, progress throttling and crash recovery. Each
 * backend's file (test/core/conformance-*.test.ts) says how to start a host on it; the tests here
 * know nothing else of it. Time: the local backend runs on a manual clock (`until` advances it),
 * the redis backend on the real one (`until` waits, bounded), so durations here are short.
 */

/** Registers the conformance tests for one backend under `t`. */
export function conformance(t: Test, backend: BackendUnderTest): void {
  t.test(`${backend.name}: stats list every queue of the config, one no job uses at 0, in the config's order`, async (t) => {
    const s = await backend.start(t, [{ name: 'later', handler: () => undefined }], { config: { queues: { critical: 6, default: 2, low: 1 } } });
    await s.host.trigger('later', { delay: '1h' });
    await s.host.trigger('later');
    await s.until(() => s.host.job('later')!.counts.succeeded === 1, 'the ready run ran');
    t.same(Object.keys(s.host.stats().queues), ['critical', 'default', 'low']);
    t.match(s.host.stats().queues, { critical: 0, low: 0 });
  });

  t.test(`${backend.name}: cancel of a waiting run answers canceled at once; it never runs; a second cancel is RUN_FINISHED`, async (t) => {
    let ran = 0;
    const s = await backend.start(t, [{ name: 'later', handler: () => void ran++ }]);
    const { runId } = await s.host.trigger('later', { delay: '1h', key: 'k' });
    const canceled = await s.host.cancel(runId);
    t.match(canceled, { id: runId, status: 'canceled', error: { code: 'CANCELED' }, attempts: [], result: null });
    t.match(await s.host.run(runId), { status: 'canceled' }, 'read back: canceled');
    t.same(
      s.of('run.canceled').map((e) => e.data.runId),
      [runId],
      'one run.canceled',
    );
    await t.rejects(s.host.cancel(runId), { code: 'RUN_FINISHED' });
    await t.rejects(s.host.cancel('no-such-run'), { code: 'RUN_NOT_FOUND' });
    // The key is free again: a new run with it is admitted and runs.
    const next = await s.host.trigger('later', { key: 'k' });
    t.equal((await final(s, next.runId)).status, 'succeeded');
    t.equal(ran, 1, 'the canceled run never ran');
    await s.until(() => s.host.job('later')!.counts.canceled === 1, 'counted as canceled');
  });

  t.test(`${backend.name}: cancel of a running run aborts its signal and answers once the run's canceled end is recorded`, async (t) => {
    const aborted = gate<string | undefined>();
    const late = gate();
    let calls = 0;
    const s = await backend.start(t, [
      {
        name: 'long',
        retry: { attempts: 3 },
        // Resolves after its abort: a late result, which must not become the run's.
        handler: (ctx) => {
          calls++;
          return new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              aborted.open(codeOf(ctx.signal.reason));
              setImmediate(() => {
                resolve('late');
                late.open();
              });
            });
          });
        },
      },
    ]);
    const { runId } = await s.host.trigger('long');
    await s.until(() => s.of('run.started').length === 1, 'the run to start');
    const t0 = Date.now();
    const canceled = await s.host.cancel(runId);
    const took = Date.now() - t0;
    t.ok(took < 3000, `answered in ${took} ms (bounded)`);
    t.match(canceled, { id: runId, status: 'canceled', error: { code: 'CANCELED' }, result: null });
    t.same(
      canceled.attempts.map((a) => a.error?.code),
      ['CANCELED'],
      'its one attempt ended CANCELED',
    );
    t.ok(canceled.endedAt !== null && canceled.attempts[0]!.endedAt !== null, 'the run and its attempt have an end');
    t.match(await s.host.run(runId), { status: 'canceled', error: { code: 'CANCELED' } }, 'read back at once: canceled');
    t.equal(await aborted.promise, 'CANCELED', "the handler's signal was aborted with CANCELED");
    await late.promise;
    t.match(await s.host.run(runId), { status: 'canceled', result: null }, 'the late result is ignored');
    await t.rejects(s.host.cancel(runId), { code: 'RUN_FINISHED' });
    t.equal(calls, 1, 'no retry, although attempts remain');
    t.equal(s.of('run.retrying').length, 0);
    await s.until(() => s.of('run.canceled').length === 1, 'run.canceled');
    await s.until(() => s.host.job('long')!.counts.canceled === 1, 'counted as canceled');
    t.equal(s.host.job('long')!.counts.failed, 0, 'not as failed');
  });

  t.test(`${backend.name}: cancel of a run waiting for its retry: canceled, its failed attempt kept, no attempt after`, async (t) => {
    let calls = 0;
    const s = await backend.start(t, [
      {
        name: 'retried',
        retry: { attempts: 3, delay: '1h' },
        handler: () => {
          calls++;
          throw new Error('first go fails');
        },
      },
    ]);
    const { runId } = await s.host.trigger('retried');
    await s.until(() => s.of('run.retrying').length === 1, 'the retry to be scheduled');
    const waiting = await s.host.run(runId);
    t.match(waiting, { status: 'queued' });
    const canceled = await s.host.cancel(runId);
    t.match(canceled, { status: 'canceled', error: { code: 'CANCELED' }, startedAt: waiting!.startedAt });
    t.same(
      canceled.attempts.map((a) => a.error?.message),
      ['first go fails'],
      'the failed attempt is kept',
    );
    t.equal(canceled.durationMs, ms(canceled.endedAt) - ms(canceled.startedAt), 'its duration runs from its first start to the cancel');
    t.match(await s.host.run(runId), { status: 'canceled', durationMs: canceled.durationMs }, 'read back the same');
    t.equal(calls, 1);
  });

  t.test(`${backend.name}: retries with exponential backoff (capped): each attempt recorded, none before its time`, async (t) => {
    const s = await backend.start(t, [
      {
        name: 'flaky',
        retry: { attempts: 4, backoff: 'exponential', delay: 100, maxDelay: 250 },
        handler: (ctx) => {
          if (ctx.attempt < 4) throw Object.assign(new Error(`no luck ${ctx.attempt}`), { code: 'FLAKY' });
          return { attempt: ctx.attempt };
        },
      },
      { name: 'doomed', retry: { attempts: 2, delay: 50 }, handler: () => Promise.reject(new Error('always')) },
    ]);
    const { runId } = await s.host.trigger('flaky');
    const run = await final(s, runId);
    t.match(run, { status: 'succeeded', result: { attempt: 4 }, maxAttempts: 4, error: null });
    t.same(
      run.attempts.map((a) => [a.n, a.error?.code ?? null]),
      [
        [1, 'FLAKY'],
        [2, 'FLAKY'],
        [3, 'FLAKY'],
        [4, null],
      ],
    );
    // The hosts' random source is 0.5: jitter adds nothing, the delays are exact.
    t.same(
      s.of('run.retrying').map((e) => [e.data.attempt, e.data.nextAttempt, e.data.delayMs, e.data.error.code]),
      [
        [1, 2, 100, 'FLAKY'],
        [2, 3, 200, 'FLAKY'],
        [3, 4, 250, 'FLAKY'],
      ],
    );
    const gaps = run.attempts.slice(1).map((a, i) => ms(a.startedAt) - ms(run.attempts[i]!.endedAt));
    t.ok(
      gaps.every((g, i) => g >= [100, 200, 250][i]!),
      `no attempt before its time (gaps ${gaps.join(', ')} ms)`,
    );

    const doomed = await final(s, (await s.host.trigger('doomed')).runId);
    t.match(doomed, { status: 'failed', error: { message: 'always' }, result: null });
    t.equal(doomed.attempts.length, 2, 'every attempt made, then failed');
    t.same(
      s.of('run.failed').map((e) => e.data.runId),
      [doomed.id],
    );
  });

  t.test(`${backend.name}: a timeout aborts the signal with TIMEOUT, fails that attempt and retries; a late result is ignored`, async (t) => {
    const reasons: Array<string | undefined> = [];
    const s = await backend.start(t, [
      {
        name: 'slow',
        timeout: 150,
        retry: { attempts: 2, delay: 10 },
        handler: (ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              reasons.push(codeOf(ctx.signal.reason));
              setImmediate(() => resolve('late'));
            });
          }),
      },
    ]);
    const run = await final(s, (await s.host.trigger('slow')).runId);
    t.match(run, { status: 'failed', error: { code: 'TIMEOUT' }, result: null });
    t.same(
      run.attempts.map((a) => a.error?.code),
      ['TIMEOUT', 'TIMEOUT'],
    );
    for (const a of run.attempts) t.ok(ms(a.endedAt) - ms(a.startedAt) >= 150, `attempt ${a.n} ran its 150 ms`);
    t.same(reasons, ['TIMEOUT', 'TIMEOUT'], 'the signal said why');
    t.same(
      s.of('run.retrying').map((e) => e.data.error.code),
      ['TIMEOUT'],
    );
  });

  t.test(`${backend.name}: admission: disabled, overlap skip, dedup key, once and cooldown refuse with run.skipped and create no run`, async (t) => {
    const hold = gate();
    const s = await backend.start(t, [
      { name: 'single', overlap: 'skip', handler: () => hold.promise },
      { name: 'keyed', concurrency: 2, handler: () => hold.promise },
      { name: 'first', once: true, handler: () => 'done' },
      // Long enough that a loaded machine still triggers again within it (the redis backend waits it out in real time).
      { name: 'cool', cooldown: 2000, handler: () => 'done' },
      { name: 'off', handler: () => 'done' },
    ]);
    await s.host.disable('off');
    await t.rejects(s.host.trigger('off'), { code: 'SKIPPED', details: { reason: 'disabled' } });
    const single = await s.host.trigger('single');
    await t.rejects(s.host.trigger('single'), { code: 'SKIPPED', details: { reason: 'overlap' } });
    const keyed = await s.host.trigger('keyed', { key: 'k' });
    await t.rejects(s.host.trigger('keyed', { key: 'k' }), { code: 'SKIPPED', details: { reason: 'duplicate' } });
    const other = await s.host.trigger('keyed', { key: 'other' });
    hold.open();
    for (const id of [single.runId, keyed.runId, other.runId]) t.equal((await final(s, id)).status, 'succeeded');
    t.equal((await final(s, (await s.host.trigger('keyed', { key: 'k' })).runId)).status, 'succeeded', 'the key is free once its run ended');
    t.equal((await final(s, (await s.host.trigger('single')).runId)).status, 'succeeded', 'so is the job with overlap skip');

    const first = await final(s, (await s.host.trigger('first')).runId);
    await t.rejects(s.host.trigger('first'), { code: 'SKIPPED', details: { reason: 'once' } });
    const cooled = await final(s, (await s.host.trigger('cool')).runId);
    await t.rejects(s.host.trigger('cool'), { code: 'SKIPPED', details: { reason: 'cooldown' } });
    await s.until(() => s.now() > ms(cooled.endedAt) + 2000, 'the cooldown to pass');
    t.equal((await final(s, (await s.host.trigger('cool')).runId)).status, 'succeeded', 'admitted once the cooldown passed');

    t.same(
      s.of('run.skipped').map((e) => [e.data.job, e.data.reason]),
      [
        ['off', 'disabled'],
        ['single', 'overlap'],
        ['keyed', 'duplicate'],
        ['first', 'once'],
        ['cool', 'cooldown'],
      ],
    );
    t.same(
      s.of('run.skipped').map((e) => e.data.runId ?? null),
      [null, single.runId, keyed.runId, first.id, null],
      'a refusal names the run standing in its way (once: the success)',
    );
    t.equal(s.of('run.queued').length, 8, 'no run for a refused trigger');
  });

  t.test(`${backend.name}: ordering: lower priority first, FIFO within a priority`, async (t) => {
    const order: string[] = [];
    const s = await backend.start(t, [{ name: 'ranked', concurrency: 1, handler: (ctx) => void order.push((ctx.params as { tag: string }).tag) }], {
      config: { concurrency: 1 },
    });
    s.host.pause();
    const ids: string[] = [];
    const ranks: Array<[number, string]> = [
      [5, 'a'],
      [0, 'b'],
      [-3, 'c'],
      [0, 'd'],
      [1_000_000, 'e'],
      [-3, 'f'],
      [0, 'g'],
      [-1_000_000, 'h'],
    ];
    for (const [priority, tag] of ranks) ids.push((await s.host.trigger('ranked', { priority, params: { tag } })).runId);
    s.host.resume();
    for (const id of ids) await final(s, id);
    t.same(order, ['h', 'c', 'f', 'b', 'd', 'g', 'a', 'e']);
  });

  t.test(`${backend.name}: ordering: runs waiting for a slot of their job (its concurrency) start by priority too`, async (t) => {
    const order: string[] = [];
    const hold = gate();
    const began = gate();
    const s = await backend.start(
      t,
      [
        {
          name: 'one-at-a-time',
          concurrency: 1,
          handler: async (ctx) => {
            const { tag } = ctx.params as { tag: string };
            if (tag === 'first') {
              began.open();
              await hold.promise;
            }
            order.push(tag);
          },
        },
      ],
      { config: { concurrency: 10 } },
    );
    const ids = [(await s.host.trigger('one-at-a-time', { params: { tag: 'first' } })).runId];
    await began.promise;
    const ranks: Array<[number, string]> = [
      [5, 'a'],
      [0, 'b'],
      [-1, 'c'],
      [0, 'd'],
    ];
    for (const [priority, tag] of ranks) ids.push((await s.host.trigger('one-at-a-time', { priority, params: { tag } })).runId);
    hold.open();
    for (const id of ids) await final(s, id);
    t.same(order, ['first', 'c', 'b', 'd', 'a']);
  });

  t.test(`${backend.name}: ordering: a delayed run never starts before its runAt, and a ready one is not held up by it`, async (t) => {
    const order: string[] = [];
    const s = await backend.start(t, [{ name: 'timed', concurrency: 3, handler: (ctx) => void order.push((ctx.params as { tag: string }).tag) }]);
    const late = await s.host.trigger('timed', { delay: 600, params: { tag: 'late' } });
    const at = s.now() + 300;
    const sooner = await s.host.trigger('timed', { runAt: new Date(at), params: { tag: 'sooner' } });
    const now = await s.host.trigger('timed', { params: { tag: 'now' } });
    const runs = [];
    for (const { runId } of [late, sooner, now]) runs.push(await final(s, runId));
    t.same(order, ['now', 'sooner', 'late']);
    const [lateRun, soonerRun] = runs;
    t.equal(lateRun!.runAt, new Date(ms(lateRun!.createdAt) + 600).toISOString(), 'delay: runAt recorded');
    t.equal(soonerRun!.runAt, new Date(at).toISOString(), 'runAt recorded');
    for (const run of runs) t.ok(ms(run.attempts[0]!.startedAt) >= ms(run.runAt), `${run.id}: started at or after its runAt`);
    t.same(
      s.of('run.queued').map((e) => e.data.delayed),
      [true, true, false],
      'run.queued says which runs wait for their time',
    );
  });

  t.test(`${backend.name}: progress is throttled per run: the first report at once, a burst as one trailing report with the newest value`, async (t) => {
    const release = gate();
    const s = await backend.start(t, [
      {
        name: 'busy',
        handler: async (ctx) => {
          for (let i = 1; i <= 5; i++) ctx.progress(i / 10, `step ${i}`);
          await release.promise;
          ctx.progress(1, 'done');
          return 'ok';
        },
      },
    ]);
    const { runId } = await s.host.trigger('busy');
    await s.until(() => s.of('run.progress').length >= 2, 'the trailing progress report');
    const reports = s.of('run.progress');
    t.same(
      reports.map((e) => [e.data.fraction, e.data.text]),
      [
        [0.1, 'step 1'],
        [0.5, 'step 5'],
      ],
    );
    t.ok(ms(reports[1]!.at) - ms(reports[0]!.at) >= 90, `reports ${ms(reports[1]!.at) - ms(reports[0]!.at)} ms apart (at most ~10 a second)`);
    t.match(await s.host.run(runId), { status: 'running', progress: { fraction: 0.5, text: 'step 5' } }, 'read back: the newest value');
    release.open();
    const run = await final(s, runId);
    t.match(run, { status: 'succeeded', progress: { fraction: 1, text: 'done' } }, 'the last value is kept with the end');
    t.ok(s.of('run.progress').length <= 3, 'no report after the end');
  });

  t.test(`${backend.name}: a trailing progress report still due when the run ends goes out before its end`, async (t) => {
    const s = await backend.start(t, [
      {
        name: 'quick-steps',
        handler: (ctx) => {
          ctx.progress(0.5, 'half');
          ctx.progress(1, 'all done');
          return 'ok';
        },
      },
    ]);
    const { runId } = await s.host.trigger('quick-steps');
    await final(s, runId);
    const progress = s.of('run.progress').filter((e) => e.data.runId === runId);
    t.same(
      progress.map((e) => [e.data.fraction, e.data.text]),
      [
        [0.5, 'half'],
        [1, 'all done'],
      ],
      'the last report too',
    );
    const ended = s.of('run.succeeded').find((e) => e.data.runId === runId)!;
    t.ok(progress.at(-1)!.seq < ended.seq, 'before the end');
  });

  t.test(`${backend.name}: progress of a failed attempt stays visible while the retry waits; the next attempt starts from zero`, async (t) => {
    const second = gate();
    const s = await backend.start(t, [
      {
        name: 'twice',
        // Long enough to read the run while it waits, on a loaded machine too.
        retry: { attempts: 2, delay: 1000 },
        handler: async (ctx) => {
          if (ctx.attempt === 1) {
            ctx.progress(0.7, 'most of it');
            throw new Error('then it broke');
          }
          await second.promise;
          return 'ok';
        },
      },
    ]);
    const { runId } = await s.host.trigger('twice');
    await s.until(() => s.of('run.retrying').length === 1, 'the retry');
    t.match(await s.host.run(runId), { status: 'queued', progress: { fraction: 0.7, text: 'most of it' } }, 'kept while waiting');
    await s.until(() => s.of('run.started').length === 2, 'the second attempt');
    t.match(await s.host.run(runId), { status: 'running', progress: { fraction: 0, text: null } }, 'reset when the next attempt starts');
    second.open();
    t.match(await final(s, runId), { status: 'succeeded', progress: { fraction: 0, text: null } });
  });

  t.test(
    `${backend.name}: a run found running after a crash is recovered: the attempt counts INTERRUPTED, it runs again while attempts remain, else fails`,
    async (t) => {
      let ran = 0;
      const plugins = (dying: boolean): PluginDefinition[] => {
        const handler = dying ? () => new Promise(() => undefined) : () => ++ran;
        return [
          { name: 'again', retry: { attempts: 2 }, handler },
          { name: 'spent', handler },
        ];
      };
      const { subject: s, runIds } = await backend.crashed(t, plugins, ['again', 'spent']);
      const [again, spent] = await Promise.all(runIds.map((id) => final(s, id)));
      t.match(again, { status: 'succeeded', source: 'recovery', result: 1 });
      t.same(
        again!.attempts.map((a) => [a.n, a.error?.code ?? null]),
        [
          [1, 'INTERRUPTED'],
          [2, null],
        ],
      );
      t.match(spent, { status: 'failed', error: { code: 'INTERRUPTED' }, attempts: [{ n: 1, error: { code: 'INTERRUPTED' } }] });
      t.equal(ran, 1, 'only the recovered run with an attempt left ran again');
      t.ok(
        s.of('run.queued').some((e) => e.data.runId === again!.id),
        'the recovering host announced it queued again',
      );
    },
  );
}
