import type { Test } from 'tap';
import type { ConfigInput } from '../../core/contract/config.js';
import { isHostError } from '../../core/contract/errors.js';
import type { AnyHostEvent, EventType } from '../../core/contract/events.js';
import type { PluginDefinition } from '../../core/contract/plugin.js';
import type { Run } from '../../core/contract/run.js';
import type { Host } from '../../core/engine/host.js';
import { gate } from '../helpers.js';

/**
 * The guarantees written on the `Backend` contract (core/contract/backend.ts), once, run against
 * every backend through the library API (`createHost`, plugins registered in code): admission,
 * ordering, retries and backoff, timeouts, cancel, progress throttling and crash recovery. Each
 * backend's file (test/core/conformance-*.test.ts) says how to start a host on it; the tests here
 * know nothing else of it. Time: the local backend runs on a manual clock (`until` advances it),
 * the redis backend on the real one (`until` waits, bounded), so durations here are short.
 */

/** A started host on the backend under test. */
export interface Subject {
  readonly host: Host;
  /** The events this host emitted, of one type. */
  of<T extends EventType>(type: T): Array<Extract<AnyHostEvent, { type: T }>>;
  /** Lets time pass (the backend's clock) until `check` holds; fails after a bound. */
  until(check: () => boolean | Promise<boolean>, what: string): Promise<void>;
  /** Now on the clock the backend records run times by (ms). */
  now(): number;
}

export interface SubjectOptions {
  config?: ConfigInput;
}

/** How to start hosts on one backend. */
export interface BackendUnderTest {
  readonly name: 'local' | 'redis';
  /** A started host with `plugins` on a fresh store (a temp dir, a Redis prefix); stopped when `t` ends. */
  start(t: Test, plugins: PluginDefinition[], options?: SubjectOptions): Promise<Subject>;
  /**
   * A crash mid-run: a host with `plugins(true)` takes a run of `job` (triggered with no params) and
   * dies while it runs (nothing written after the start; the local backend calls the handler, the
   * redis one may not). Resolves with a host started afterwards with `plugins(false)`, the one
   * that finds the run, and the run's id.
   */
  crashed(t: Test, plugins: (dying: boolean) => PluginDefinition[], job: string): Promise<{ subject: Subject; runId: string }>;
}

/** The run once it is final (waits on the host's events, letting the backend's time pass). */
async function final(s: Subject, runId: string): Promise<Run> {
  let ended: Run | undefined;
  let failed: unknown;
  s.host.wait(runId).then(
    (run) => void (ended = run),
    (err: unknown) => void (failed = err ?? new Error('wait failed')),
  );
  await s.until(() => ended !== undefined || failed !== undefined, `run ${runId} to end`);
  if (failed !== undefined) throw failed;
  return ended!;
}

const ms = (iso: string | null): number => (iso === null ? Number.NaN : Date.parse(iso));
const codeOf = (reason: unknown): string | undefined => (isHostError(reason) ? reason.code : (reason as { code?: string } | undefined)?.code);

/** Registers the conformance tests for one backend under `t`. */
export function conformance(t: Test, backend: BackendUnderTest): void {
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
}
