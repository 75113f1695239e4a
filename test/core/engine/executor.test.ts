import t from 'tap';
import type { AttemptReporter, AttemptTask, ExecutableJob } from '../../../core/contract/attempt.js';
import { HostError, type RunError } from '../../../core/contract/errors.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import { DEFAULT_RETRY } from '../../../core/contract/retry.js';
import type { Run } from '../../../core/contract/run.js';
import { InlineExecutor } from '../../../core/engine/executor.js';
import { installProcessHandlers } from '../../../core/engine/process-handlers.js';
import { gate } from '../../helpers.js';

/** The attempt executor through the interface a backend uses: `execute(task, reporter)` and the handle. */

function runOf(params: unknown = {}): Run {
  return {
    id: 'run-1',
    job: 'job-a',
    status: 'running',
    source: 'api',
    params,
    priority: 0,
    key: null,
    queue: 'default',
    createdAt: '2026-01-01T00:00:00.000Z',
    runAt: '2026-01-01T00:00:00.000Z',
    startedAt: '2026-01-01T00:00:00.000Z',
    endedAt: null,
    durationMs: null,
    progress: { fraction: 0, text: null },
    attempts: [{ n: 1, startedAt: '2026-01-01T00:00:00.000Z', endedAt: null, error: null }],
    maxAttempts: 1,
    result: null,
    error: null,
    retryOf: null,
    event: null,
  };
}

function taskOf(handler: (ctx: JobContext<never>) => unknown, params?: unknown): AttemptTask {
  const job: ExecutableJob = { name: 'job-a', handler, concurrency: 1, queue: 'default', timeoutMs: 0, retry: DEFAULT_RETRY, once: false, cooldownMs: 0 };
  return { run: runOf(params), job, attempt: 2 };
}

/** What the executor reported, in order, and a promise of the first settle. */
function recorder(): { reporter: AttemptReporter<AttemptTask>; log: string[]; settled: Promise<{ result: unknown; error: RunError | null }> } {
  const log: string[] = [];
  const done = gate<{ result: unknown; error: RunError | null }>();
  return {
    log,
    settled: done.promise,
    reporter: {
      settled(_task, result, error) {
        log.push(`settled ${error ? error.code : JSON.stringify(result)}`);
        done.open({ result, error });
      },
      progress(_task, fraction, text) {
        log.push(`progress ${fraction} ${text ?? ''}`);
      },
    },
  };
}

function executor(emitted: string[] = []): InlineExecutor {
  return new InlineExecutor({
    logger: silentLogger(),
    reader: { runs: async () => ({ items: [] }), run: async () => undefined, stats: () => ({}) as never },
    publish: (event, _payload, runId) => emitted.push(`${event} from ${runId}`),
  });
}

t.test('ctx carries the run, and the result is reported as its JSON copy', async (t) => {
  const emitted: string[] = [];
  const { reporter, settled, log } = recorder();
  const out = { items: [1, 2] };
  let seen: { runId: string; job: string; attempt: number; params: unknown } | undefined;
  executor(emitted).execute(
    taskOf(
      (ctx) => {
        seen = { runId: ctx.runId, job: ctx.job, attempt: ctx.attempt, params: ctx.params };
        ctx.progress(0.5, 'half');
        ctx.emit('thing.done', { ok: true });
        return out;
      },
      { dir: '/tmp' },
    ),
    reporter,
  );
  const { result, error } = await settled;
  out.items.push(3);
  t.same(seen, { runId: 'run-1', job: 'job-a', attempt: 2, params: { dir: '/tmp' } });
  t.equal(error, null);
  t.same(result, { items: [1, 2] }, 'a copy: later mutation of the returned object does not reach the record');
  t.same(log, ['progress 0.5 half', 'settled {"items":[1,2]}']);
  t.same(emitted, ['thing.done from run-1']);
});

t.test('failures become the attempt error: throw, reject, a non-Error, a result JSON cannot hold', async (t) => {
  const cases: Array<[string, (ctx: JobContext<never>) => unknown, string]> = [
    [
      'sync throw',
      () => {
        throw new Error('boom');
      },
      'HANDLER_ERROR',
    ],
    [
      'rejection with a class name',
      async () => {
        throw new TypeError('bad type');
      },
      'TypeError',
    ],
    [
      'an Error with its own code',
      async () => {
        throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      },
      'ECONNREFUSED',
    ],
    [
      'a non-Error',
      async () => {
        throw 'just a string';
      },
      'HANDLER_ERROR',
    ],
    ['a BigInt result', () => ({ n: 1n }), 'RESULT_NOT_SERIALIZABLE'],
  ];
  for (const [what, handler, code] of cases) {
    const { reporter, settled } = recorder();
    executor().execute(taskOf(handler), reporter);
    const { error } = await settled;
    t.equal(error?.code, code, what);
  }
});

t.test('abort: the signal carries the reason, and nothing is reported after it', async (t) => {
  const { reporter, log } = recorder();
  const release = gate();
  let signal: AbortSignal | undefined;
  let progressAfterAbort: (() => void) | undefined;
  const handle = executor().execute(
    taskOf(async (ctx) => {
      signal = ctx.signal;
      progressAfterAbort = () => ctx.progress(0.9, 'late');
      await release.promise;
      return 'late result';
    }),
    reporter,
  );
  t.equal(signal?.aborted, false);
  handle.abort(new HostError('CANCELED', 'canceled by request'));
  t.equal(signal?.aborted, true);
  t.equal((signal?.reason as HostError | undefined)?.code, 'CANCELED');
  progressAfterAbort?.();
  release.open();
  await new Promise((r) => setImmediate(r));
  t.same(log, [], 'neither the late progress nor the late result is reported');
});

t.test('a signal first read after the abort is already aborted', async (t) => {
  const { reporter } = recorder();
  const read = gate<AbortSignal>();
  const go = gate();
  const handle = executor().execute(
    taskOf(async (ctx) => {
      await go.promise;
      read.open(ctx.signal);
    }),
    reporter,
  );
  handle.abort(new HostError('SHUTDOWN', 'the host shut down'));
  go.open();
  const signal = await read.promise;
  t.equal(signal.aborted, true);
  t.equal((signal.reason as HostError).code, 'SHUTDOWN');
});

t.test('with the process handlers installed, a stray rejection fails the attempt that left it', async (t) => {
  const ex = executor();
  t.teardown(installProcessHandlers(true, { logger: silentLogger(), flush: () => Promise.resolve() }));
  const { reporter, settled } = recorder();
  ex.execute(
    taskOf(() => {
      void Promise.reject(new Error('nobody awaited this'));
      return new Promise(() => undefined); // never settles by itself
    }),
    reporter,
  );
  const { error } = await settled;
  t.equal(error?.code, 'UNHANDLED_REJECTION');
  t.equal(error?.message, 'nobody awaited this');
});
