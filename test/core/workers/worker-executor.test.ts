import { writeFileSync } from 'node:fs';
import t from 'tap';
import type { Run } from '../../../core/contract/run.js';
import { captureLogger, until } from '../../helpers.js';
import { CORE, pluginHost } from '../../plugin-host.js';

/**
 * Handlers in worker threads, through the host as plugin files run: real threads, real files,
 * the host's manual clock for timeouts and the grace. What a handler sees and reports is the
 * same as inline; what it does wrong ends its attempt, never the host or other runs.
 */

const probe = `
import { threadId } from 'node:worker_threads';
import { z } from 'zod';
import { definePlugin } from '${CORE}';
export default definePlugin({
  name: 'probe',
  params: z.object({ n: z.number().default(1), tag: z.string() }),
  async handler(ctx) {
    ctx.progress(0.5, 'half');
    ctx.log.info({ step: 1 }, 'probing');
    ctx.log.child({ part: 'inner' }).warn('a child line');
    ctx.emit('probe.done', { from: ctx.runId });
    const page = await ctx.host.runs({ job: 'probe', limit: 10 });
    const self = await ctx.host.run(ctx.runId);
    const stats = await ctx.host.stats();
    return { threadId, runId: ctx.runId, job: ctx.job, attempt: ctx.attempt, params: ctx.params, listed: page.items.map((r) => r.id), status: self?.status, running: stats.totals.running, aborted: ctx.signal.aborted };
  },
});
`;

t.test('ctx crosses into the thread: params, ids, progress, log lines, emit, host reads, the JSON result', async (t) => {
  const { logger, lines } = captureLogger();
  const h = await pluginHost(
    t,
    { 'probe.ts': probe, 'listener.ts': `export default { name: 'listener', on: ['probe.done'], handler: (ctx) => ctx.params };\n` },
    { logger },
  );
  t.equal(h.host.job('probe')!.isolation, 'worker');
  const { runId } = await h.host.trigger('probe', { params: { tag: 'x' } });
  const run = await h.host.wait(runId);
  t.equal(run.status, 'succeeded', JSON.stringify(run.error));
  const result = run.result as Record<string, unknown>;
  t.not(result['threadId'], 0, 'the handler ran in a worker thread');
  t.match(result, { runId, job: 'probe', attempt: 1, params: { n: 1, tag: 'x' }, status: 'running', aborted: false });
  t.ok((result['listed'] as string[]).includes(runId), 'ctx.host.runs() answered from the main thread');
  t.ok((result['running'] as number) >= 1, 'ctx.host.stats() answered (a promise in a thread)');
  t.match(
    h.of('run.progress').map((e) => e.data),
    [{ runId, fraction: 0.5, text: 'half' }],
  );
  t.match(
    lines.find((l) => l['msg'] === 'probing'),
    { level: 30, job: 'probe', runId, attempt: 1, step: 1 },
    'a ctx.log line reaches the host logger with the run bound',
  );
  t.match(
    lines.find((l) => l['msg'] === 'a child line'),
    { level: 40, job: 'probe', runId, part: 'inner' },
  );
  await until(() => h.of('run.succeeded').some((e) => e.data.job === 'listener'), 5000, 'the emitted event ran its listener');
  const listened = h.of('run.succeeded').find((e) => e.data.job === 'listener')!;
  t.same(listened.data.result, { from: runId }, 'ctx.emit published the payload');
});

/** The same plugin, in a thread or inline: what it logs is kept with its run alike. */
const talker = (name: string, isolation: string): string => `
export default {
  name: '${name}',
  isolation: '${isolation}',
  async handler(ctx) {
    ctx.log.info({ step: 1 }, 'hello %s', 'there');
    ctx.log.trace('below the host level, kept all the same');
    ctx.log.child({ part: 'inner' }).warn('a child line');
    ctx.log.error(Object.assign(new Error('boom'), { code: 'E_TEST' }), 'it broke');
    await new Promise((resolve) => setTimeout(resolve, 1));
    ctx.log.info('after a turn of the loop');
    if (ctx.attempt === 1) throw new Error('again');
    return 'ok';
  },
  retry: { attempts: 2, backoff: 'fixed', delay: '1s', jitter: 0 },
};
`;

t.test('ctx.log lines of a handler in a thread are kept with its run, as inline: every level, fields, attempts', async (t) => {
  const { logger, lines: hostLog } = captureLogger();
  const h = await pluginHost(t, { 'talk-worker.js': talker('talk-worker', 'worker'), 'talk-inline.js': talker('talk-inline', 'inline') }, { logger });
  t.equal(h.host.job('talk-worker')!.isolation, 'worker');
  t.equal(h.host.job('talk-inline')!.isolation, 'inline');
  const kept: Record<string, unknown[]> = {};
  for (const job of ['talk-worker', 'talk-inline']) {
    const { runId } = await h.host.trigger(job);
    await until(() => h.of('run.retrying').some((e) => e.data.runId === runId), 10_000, `${job}'s first attempt failed`);
    h.clock.advance(1000);
    const run = await h.host.wait(runId);
    t.equal(run.status, 'succeeded', JSON.stringify(run.error));
    const { log } = await h.host.runLog(runId);
    t.equal(log.dropped, 0);
    kept[job] = log.lines.map(({ at: _at, ...line }) => ({ ...line, fields: strip(line.fields) }));
  }
  const one = [
    { i: 1, level: 'info', msg: 'hello there', fields: { step: 1 } },
    { i: 2, level: 'trace', msg: 'below the host level, kept all the same', fields: undefined },
    { i: 3, level: 'warn', msg: 'a child line', fields: { part: 'inner' } },
    { i: 4, level: 'error', msg: 'it broke', fields: { err: { type: 'Error', message: 'boom', code: 'E_TEST' } } },
    { i: 5, level: 'info', msg: 'after a turn of the loop', fields: undefined },
  ];
  const expected = [...one.map((l) => ({ attempt: 1, ...l })), ...one.map((l) => ({ attempt: 2, ...l }))];
  t.same(kept['talk-worker'], expected, "the thread's lines, both attempts, numbered per attempt, any level");
  t.same(kept['talk-worker'], kept['talk-inline'], 'the same as the inline run keeps');
  const written = hostLog.filter((l) => l['job'] === 'talk-worker');
  t.match(
    written.find((l) => l['msg'] === 'hello there'),
    { level: 30, attempt: 1, step: 1 },
    "the host's log gets the line too, with its run bound",
  );
  t.notOk(
    written.some((l) => l['level'] === 10),
    "a trace line is not written to a debug-level host's log",
  );
  const broke = written.find((l) => l['msg'] === 'it broke') as { err: { stack: string } };
  t.match(broke.err.stack, /^Error: boom\n/, "a logged error keeps its stack in the host's log");
  t.ok(broke.err.stack.length < 2000, "the thread's frames are named, not a data: URL");
});

/** A line's fields without the stack of a logged error (paths differ between the two files). */
function strip(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const err = fields?.['err'] as Record<string, unknown> | undefined;
  if (!err) return fields;
  const { stack, ...rest } = err;
  return { ...fields, err: typeof stack === 'string' ? rest : err };
}

const failLib = `
// A value every trap of which throws: even instanceof fails on it.
const trap = (): unknown => new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); }, has() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); } });
export function fail(kind: string): unknown {
  switch (kind) {
    case 'type': throw new TypeError('bad type');
    case 'own-code': throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    case 'string': throw 'just a string';
    case 'reject': return Promise.reject(new Error('rejected'));
    case 'bigint': return { n: 10n };
    case 'circular': { const o: Record<string, unknown> = {}; o['self'] = o; return o; }
    case 'stray-rejection': void Promise.reject(new Error('left behind')); return new Promise(() => {});
    case 'timer-throw': setTimeout(() => { throw new Error('from a timer'); }, 1); return new Promise(() => {});
    case 'null-proto': throw Object.assign(Object.create(null), { n: 1n });
    case 'bad-message': { const e = new Error('x'); Object.defineProperty(e, 'message', { get() { throw new Error('no message'); } }); throw e; }
    case 'bad-then': return { then() { throw new Error('bad then'); } };
    case 'then-getter': return Object.defineProperty({}, 'then', { get() { throw new Error('then getter'); } });
    case 'own-class': { class QuotaError extends Error {} throw new QuotaError('over quota'); }
    case 'huge': throw new Error('E'.repeat(100_000));
    case 'tojson-null': return { toJSON() { throw null; } };
    case 'stray-proxy': setTimeout(() => { throw trap(); }, 1); return new Promise(() => {});
    case 'reject-proxy': void Promise.reject(trap()); return new Promise(() => {});
    case 'text': return 'plain text';
    case 'nothing': return undefined;
    default: return { kind, when: new Date(0) };
  }
}
`;
const failPlugin = (name: string, isolation: string): string =>
  `import { fail } from './lib/fail.js';\nexport default { name: '${name}', isolation: '${isolation}', handler: (ctx: { params: { kind: string } }) => fail(ctx.params.kind) };\n`;

t.test('outcomes are the same in a thread as inline: throws, rejections, strays, results JSON cannot hold', async (t) => {
  // Inline, strays reach the process: the host's process handlers trace them to their attempt (as under jobhost start).
  const h = await pluginHost(
    t,
    { 'lib/fail.ts': failLib, 'fails.ts': failPlugin('fails', 'worker'), 'fails-inline.ts': failPlugin('fails-inline', 'inline') },
    { processHandlers: true },
  );
  t.equal(h.host.job('fails')!.isolation, 'worker');
  t.equal(h.host.job('fails-inline')!.isolation, 'inline');
  const outcome = (run: Run) => ({ status: run.status, result: run.result, error: run.error });
  const expected: Record<string, unknown> = {
    type: { status: 'failed', error: { code: 'TypeError', message: 'bad type' } },
    'own-code': { status: 'failed', error: { code: 'ECONNREFUSED', message: 'refused' } },
    string: { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'non-Error thrown: just a string' } },
    reject: { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'rejected' } },
    bigint: { status: 'failed', error: { code: 'RESULT_NOT_SERIALIZABLE' } },
    circular: { status: 'failed', error: { code: 'RESULT_NOT_SERIALIZABLE' } },
    'stray-rejection': { status: 'failed', error: { code: 'UNHANDLED_REJECTION', message: 'left behind' } },
    'timer-throw': { status: 'failed', error: { code: 'UNCAUGHT_EXCEPTION', message: 'from a timer' } },
    // What cannot be described still fails the attempt (not the host, nor the run left running).
    'null-proto': { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'non-Error thrown: a value that cannot be described' } },
    'bad-message': { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'non-Error thrown: a value that cannot be described' } },
    'bad-then': { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'bad then' } },
    'then-getter': { status: 'failed', error: { code: 'HANDLER_ERROR', message: 'then getter' } },
    'own-class': { status: 'failed', error: { code: 'QuotaError', message: 'over quota' } },
    huge: { status: 'failed', error: { code: 'HANDLER_ERROR', message: /^E{8192}… \(91808 more characters\)$/ } },
    'tojson-null': {
      status: 'failed',
      error: { code: 'RESULT_NOT_SERIALIZABLE', message: /^the handler's result cannot be stored as JSON: non-Error thrown: null$/ },
    },
    'stray-proxy': { status: 'failed', error: { code: 'UNCAUGHT_EXCEPTION', message: 'non-Error thrown: a value that cannot be described' } },
    'reject-proxy': { status: 'failed', error: { code: 'UNHANDLED_REJECTION', message: 'non-Error thrown: a value that cannot be described' } },
    text: { status: 'succeeded', result: 'plain text', error: null },
    nothing: { status: 'succeeded', result: null, error: null },
    json: { status: 'succeeded', result: { kind: 'json', when: '1970-01-01T00:00:00.000Z' }, error: null },
  };
  for (const [kind, want] of Object.entries(expected)) {
    const inThread = outcome(await h.host.wait((await h.host.trigger('fails', { params: { kind } })).runId));
    const inline = outcome(await h.host.wait((await h.host.trigger('fails-inline', { params: { kind } })).runId));
    t.match(inThread, want, `${kind}: in a thread`);
    t.same(inThread, inline, `${kind}: the same as inline`);
  }
  t.same(h.host.workerStats().restarts, { grace: 0, exit: 0, memory: 0, crash: 0 }, 'no thread was lost to any of it');
});

const spin = `
import { writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
export default {
  name: 'spin',
  timeout: '1s',
  concurrency: 5,
  retry: { attempts: 2, backoff: 'fixed', delay: '1s', jitter: 0 },
  handler: (ctx: { attempt: number; params: { mark: string } }) => {
    writeFileSync(ctx.params.mark + '.' + ctx.attempt, String(threadId));
    const end = Date.now() + 60_000;
    while (Date.now() < end) {}
    return 'spun';
  },
};
`;
const quick = `import { threadId } from 'node:worker_threads';\nexport default { name: 'quick', concurrency: 10, handler: () => ({ threadId }) };\n`;

t.test(
  'a spinning handler: other runs go on; at its timeout it ends TIMEOUT; after the grace its thread is terminated and replaced; the retry follows the policy',
  async (t) => {
    const h = await pluginHost(t, { 'spin.ts': spin, 'quick.ts': quick });
    const { runId } = await h.host.trigger('spin', { params: { mark: h.mark('spin') } });
    const spinThread = Number(await h.marked('spin.1'));
    for (let i = 0; i < 3; i++) {
      const run = await h.host.wait((await h.host.trigger('quick')).runId);
      t.equal(run.status, 'succeeded', `quick run ${i} ran while the handler spins`);
      t.not((run.result as { threadId: number }).threadId, spinThread, 'on the other thread');
    }
    t.equal((await h.host.run(runId))!.status, 'running', 'the spinning attempt still counts as running');

    await h.clock.advance(1000);
    const retrying = h.of('run.retrying').find((e) => e.data.runId === runId);
    t.match(retrying?.data, { attempt: 1, delayMs: 1000, error: { code: 'TIMEOUT' } }, 'the attempt ended TIMEOUT at its timeout');
    t.equal(h.host.workerStats().restarts.grace, 0, 'the handler still has its grace');

    await h.clock.advance(1000);
    await until(() => h.host.workerStats().restarts.grace === 1, 5000, 'the thread terminated after the grace');
    const retryThread = Number(await h.marked('spin.2'));
    t.not(retryThread, spinThread, 'the retry runs on a live thread');
    await until(() => h.host.workerStats().threads === 2, 5000, 'the pool back at its size');

    await h.clock.advance(1000);
    const run = await h.host.wait(runId);
    t.match(run, { status: 'failed', error: { code: 'TIMEOUT' }, attempts: [{ error: { code: 'TIMEOUT' } }, { error: { code: 'TIMEOUT' } }] });
    await h.clock.advance(1000);
    await until(() => h.host.workerStats().restarts.grace === 2, 5000, 'the second thread terminated too');
    t.equal((await h.host.wait((await h.host.trigger('quick')).runId)).status, 'succeeded', 'the pool still runs handlers');
  },
);

t.test('a cancel of a spinning run ends it at once; its thread is terminated after the grace', async (t) => {
  const h = await pluginHost(t, { 'spin.ts': spin });
  const { runId } = await h.host.trigger('spin', { params: { mark: h.mark('spin') } });
  await h.marked('spin.1');
  const canceled = await h.host.cancel(runId);
  t.match(canceled, { status: 'canceled', error: { code: 'CANCELED' } });
  t.equal(h.host.workerStats().restarts.grace, 0);
  await h.clock.advance(1000);
  await until(() => h.host.workerStats().restarts.grace === 1, 5000, 'the thread terminated after the grace');
  t.equal((await h.host.run(runId))!.status, 'canceled');
});

t.test('a handler that lets go when its signal aborts keeps its thread', async (t) => {
  const polite = `
import { writeFileSync } from 'node:fs';
export default {
  name: 'polite',
  timeout: '1s',
  handler: (ctx: { signal: AbortSignal; params: { mark: string } }) => new Promise((_, reject) => {
    ctx.signal.addEventListener('abort', () => {
      const reason = ctx.signal.reason as { code: string; name: string };
      writeFileSync(ctx.params.mark, reason.code + ' ' + reason.name);
      reject(reason);
    });
    writeFileSync(ctx.params.mark + '.ready', 'yes');
  }),
};
`;
  const h = await pluginHost(t, { 'polite.ts': polite });
  const { runId } = await h.host.trigger('polite', { params: { mark: h.mark('polite') } });
  await h.marked('polite.ready');
  await h.clock.advance(1000);
  t.match(await h.host.wait(runId), { status: 'failed', error: { code: 'TIMEOUT' } });
  t.equal(await h.marked('polite'), 'TIMEOUT HostError', "the thread's signal carried the reason");
  await until(() => h.host.workerStats().running === 0, 5000, 'the handler let go');
  await h.clock.advance(5000);
  t.same(h.host.workerStats().restarts, { grace: 0, exit: 0, memory: 0, crash: 0 }, 'no thread terminated');
});

t.test('process.exit() and a memory hog fail only their own attempt; a run on another thread goes on', async (t) => {
  const waiter = `
import { existsSync, appendFileSync } from 'node:fs';
export default {
  name: 'waiter',
  handler: (ctx: { params: { mark: string; release: string } }) => {
    appendFileSync(ctx.params.mark, 'started;');
    return new Promise((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(ctx.params.release)) { clearInterval(poll); resolve('released'); }
      }, 5);
    });
  },
};
`;
  const quit = `export default { name: 'quit', handler: () => { process.exit(7); } };\n`;
  const hog = `export default { name: 'hog', handler: () => { const keep: unknown[] = []; for (;;) keep.push(new Array(10_000).fill({ x: Math.random() })); } };\n`;
  const h = await pluginHost(t, { 'waiter.ts': waiter, 'quit.ts': quit, 'hog.ts': hog }, { config: { workers: { maxMemoryMb: 64 } } });
  const waiting = await h.host.trigger('waiter', { params: { mark: h.mark('waiter'), release: h.mark('release') } });
  await h.marked('waiter');

  const exited = await h.host.wait((await h.host.trigger('quit')).runId);
  t.match(exited, { status: 'failed', error: { code: 'WORKER_EXITED', message: 'the handler called process.exit(7)' } });
  const hogged = await h.host.wait((await h.host.trigger('hog')).runId);
  t.match(hogged, { status: 'failed', error: { code: 'OUT_OF_MEMORY', message: /workers\.maxMemoryMb: 64/ } });
  t.match(h.host.workerStats().restarts, { exit: 1, memory: 1 });

  writeFileSync(h.mark('release'), 'go');
  const run = await h.host.wait(waiting.runId);
  t.match(run, { status: 'succeeded', result: 'released' });
  t.equal(run.attempts.length, 1);
  t.equal(h.read('waiter'), 'started;', 'the waiting handler was never disturbed');
});

t.test('handlers that end their thread at once, on threads that never ran anything before, are not threads failing to start', async (t) => {
  // Each quit lands on a thread that had started but read nothing yet (a warm one, or the one that
  // replaced the last): the pool once counted those deaths as failed starts, and after three in a
  // row stopped replacing threads.
  const quit = `export default { name: 'quit', handler: () => { process.exit(3); } };\n`;
  const hello = `export default { name: 'hello', handler: () => 'hello' };\n`;
  const h = await pluginHost(t, { 'quit.ts': quit, 'hello.ts': hello });
  for (let i = 0; i < 4; i++) {
    const run = await h.host.wait((await h.host.trigger('quit')).runId);
    t.match(run, { status: 'failed', error: { code: 'WORKER_EXITED' } }, `quit ${i + 1}`);
  }
  t.equal(h.host.workerStats().restarts.exit, 4);
  await until(() => h.host.workerStats().threads === 2, 10_000, 'every dead thread replaced: the pool back at its size');
  t.match(await h.host.wait((await h.host.trigger('hello')).runId), { status: 'succeeded', result: 'hello' });
});

t.test('shutdown aborts a spinning handler with SHUTDOWN and ends its thread within the grace', async (t) => {
  const h = await pluginHost(t, { 'spin.ts': spin.replace('attempts: 2', 'attempts: 1') }, { config: { workers: { grace: 300 } } });
  const { runId } = await h.host.trigger('spin', { params: { mark: h.mark('spin') } });
  await h.marked('spin.1');
  const t0 = Date.now();
  await h.host.stop({ graceMs: 0 });
  t.ok(Date.now() - t0 < 10_000, 'stop ended (hang guard)');
  t.match(h.of('run.failed').find((e) => e.data.runId === runId)?.data, { error: { code: 'SHUTDOWN' } });
  t.equal(h.host.workerStats().threads, 0, 'no thread outlives the host');
});

t.test('two plugins importing one TypeScript helper from outside the plugins directory both load it in a thread', async (t) => {
  const plugin = (name: string): string =>
    `import { twice } from '../lib/util.ts';\nexport default { name: '${name}', isolation: 'worker', handler: () => twice(${name === 'one' ? 1 : 2}) };\n`;
  // One thread: the first import of the helper in it fails (no tsx yet) and is made again with
  // tsx; Node keeps that first failure under the helper's URL, which the second plugin imports too.
  const h = await pluginHost(
    t,
    { '../lib/util.ts': 'export const twice = (n: number): number => n * 2;\n', 'one.ts': plugin('one'), 'two.ts': plugin('two') },
    { config: { workers: { size: 1 } } },
  );
  await until(() => h.host.jobs().length === 2, 10_000, 'both plugins loaded');
  for (const [job, want] of [
    ['one', 2],
    ['two', 4],
    ['one', 2],
  ] as const) {
    const run = await h.host.wait((await h.host.trigger(job)).runId);
    t.match(run, { status: 'succeeded', result: want }, `${job} runs in its thread`);
  }
});

t.test('a handler in a thread that logs in a tight loop: a turn sends 1,000 lines, the rest are counted in one warning of its log', async (t) => {
  const { logger, lines } = captureLogger();
  const loud = `export default { name: 'loud', handler(ctx) { for (let i = 0; i < 5000; i++) ctx.log.info({ i }, 'line %d', i); return 'done'; } };\n`;
  const h = await pluginHost(t, { 'loud.mjs': loud }, { logger });
  const { runId } = await h.host.trigger('loud');
  t.equal((await h.host.wait(runId)).status, 'succeeded');
  await until(() => lines.some((l) => typeof l['msg'] === 'string' && l['msg'].includes('log lines dropped')), 5000, 'the warning');
  const sent = lines.filter((l) => l['runId'] === runId && /^line \d+$/.test(String(l['msg'])));
  t.equal(sent.length, 1000, 'the first 1,000 lines of the turn reach the host logger');
  t.match(
    lines.find((l) => String(l['msg']).includes('log lines dropped')),
    { level: 40, runId, msg: '4000 log lines dropped: more than 1000 in one turn of the event loop' },
    'the rest are counted, in a line of the run',
  );
});
