import t, { type Test } from 'tap';
import type { JobContext } from '../../../core/contract/plugin.js';
import { gate, nextEvent, startHost } from '../../helpers.js';
import { pluginHost } from '../../plugin-host.js';

/**
 * `limits` (SPEC §3) through the library: each limit at its edge, exactly at it passes and one
 * byte over fails, counted in UTF-8 bytes of the JSON text.
 */

const KIB = 1024;
const limits = { maxParamsBytes: KIB, maxResultBytes: KIB, maxEventBytes: KIB, maxQueued: 2 };
/** `{"s":"…"}` is the string's length plus 8 bytes. */
const sized = (bytes: number, ch = 'x'): { s: string } => ({ s: ch.repeat(bytes - 8) });

const rejectsWith = async (t: Test, p: Promise<unknown>, code: string, message?: string): Promise<Record<string, unknown>> => {
  try {
    await p;
  } catch (err) {
    t.equal((err as { code?: string }).code, code, message ?? code);
    return err as Record<string, unknown>;
  }
  t.fail(`expected ${code}, it resolved`);
  return {};
};

t.test('maxParamsBytes: params of exactly the limit are accepted, one byte more is PARAMS_TOO_LARGE (413)', async (t) => {
  const { host } = await startHost(t, { config: { limits } });
  host.register({ name: 'takes', handler: () => null });
  const { runId } = await host.trigger('takes', { params: sized(KIB) });
  t.equal((await host.wait(runId)).status, 'succeeded');
  const err = await rejectsWith(t, host.trigger('takes', { params: sized(KIB + 1) }), 'PARAMS_TOO_LARGE');
  t.equal((err as { statusCode?: number }).statusCode, 413);
  t.match(err, { details: { bytes: KIB + 1, max: KIB } });
  // Bytes, not characters: 'é' is two bytes in UTF-8.
  await host.trigger('takes', { params: { s: 'é'.repeat((KIB - 8) / 2) } });
  await rejectsWith(t, host.trigger('takes', { params: { s: `${'é'.repeat((KIB - 8) / 2)}x` } }), 'PARAMS_TOO_LARGE', 'one byte over in multi-byte text');
  t.equal((await host.runs({ job: 'takes' })).items.length, 2, 'the refused triggers created no run');
});

t.test('maxParamsBytes is read per trigger: a config edit applies to the next one', async (t) => {
  const { host, dir } = await startHost(t, { config: { limits } });
  host.register({ name: 'takes', handler: () => null });
  await rejectsWith(t, host.trigger('takes', { params: sized(2 * KIB) }), 'PARAMS_TOO_LARGE');
  const changes = host.applyConfig({ store: { dir }, limits: { ...limits, maxParamsBytes: 2 * KIB } });
  t.same(changes, { changed: ['limits'], restartRequired: [] }, 'limits need no restart');
  t.ok((await host.trigger('takes', { params: sized(2 * KIB) })).runId);
});

t.test('maxEventBytes: host.publish at the limit enqueues, one byte more is EVENT_TOO_LARGE (413) and enqueues nothing', async (t) => {
  const { host } = await startHost(t, { config: { limits: { ...limits, maxParamsBytes: 4 * KIB } } });
  host.register({ name: 'listens', on: ['thing.happened'], handler: () => null });
  const ok = await host.publish('thing.happened', sized(KIB));
  t.equal(ok.enqueued.length, 1);
  const err = await rejectsWith(t, host.publish('thing.happened', sized(KIB + 1)), 'EVENT_TOO_LARGE');
  t.equal((err as { statusCode?: number }).statusCode, 413);
  await rejectsWith(t, host.publish('nobody.listens', sized(KIB + 1)), 'EVENT_TOO_LARGE', 'refused whether or not a job listens');
  t.equal((await host.runs({ job: 'listens' })).items.length, 1);
});

t.test('maxQueued: past it a trigger is QUEUE_FULL (503, retryAfter) and an app event too; nothing is enqueued', async (t) => {
  const { host } = await startHost(t, { config: { limits } });
  host.register({ name: 'waits', on: ['go'], overlap: 'allow', handler: () => null });
  host.pause();
  await host.trigger('waits');
  await host.trigger('waits', { delay: '1h' });
  const err = await rejectsWith(t, host.trigger('waits'), 'QUEUE_FULL', 'delayed runs count as waiting');
  t.equal((err as { statusCode?: number }).statusCode, 503);
  t.match(err, { details: { maxQueued: 2, retryAfter: 5 } });
  await rejectsWith(t, host.publish('go', {}), 'QUEUE_FULL');
  t.same(await host.publish('nobody.listens', {}), { enqueued: [], skipped: [], errors: [] }, 'an event no job takes is no run');
  t.equal((await host.runs({ job: 'waits' })).items.length, 2);
  // Room again once one starts: running runs do not count.
  host.resume();
  await nextEvent(host, (e) => e.type === 'run.succeeded');
  t.ok((await host.trigger('waits')).runId);
});

t.test('maxQueued: a schedule fire past it is run.skipped with reason queue-full', async (t) => {
  const { host, clock, of } = await startHost(t, { config: { limits } });
  host.register({ name: 'filler', overlap: 'allow', handler: () => null });
  host.register({ name: 'ticks', schedule: '* * * * *', handler: () => null });
  host.pause();
  await host.trigger('filler');
  await host.trigger('filler');
  const skipped = nextEvent(host, (e) => e.type === 'run.skipped' && e.data.job === 'ticks');
  await clock.advance(60_000);
  t.match((await skipped).data, { job: 'ticks', reason: 'queue-full', source: 'schedule' });
  t.equal((await host.runs({ job: 'ticks' })).items.length, 0, 'the fire made no run');
  t.equal(of('run.queued').length, 2);
});

t.test('maxQueued: a run `after` triggers is not refused: it is part of its parent end, with no caller to retry it', async (t) => {
  const { host, of } = await startHost(t, { config: { limits } });
  const began = gate();
  const release = gate();
  host.register({
    name: 'parent',
    handler: () => {
      began.open();
      return release.promise;
    },
  });
  host.register({ name: 'child', after: ['parent'], handler: () => 'chained' });
  host.register({ name: 'filler', overlap: 'allow', handler: () => null });
  await host.trigger('parent');
  await began.promise;
  await host.trigger('filler', { delay: '1h' });
  await host.trigger('filler', { delay: '1h' });
  await rejectsWith(t, host.trigger('filler'), 'QUEUE_FULL', 'the queue is full');
  const done = nextEvent(host, (e) => e.type === 'run.succeeded' && e.data.job === 'child');
  release.open();
  t.match((await done).data, { job: 'child', result: 'chained' }, 'the child ran');
  t.same(of('run.skipped'), [], 'nothing skipped');
});

t.test('maxResultBytes inline: a result of exactly the limit is kept, one byte more fails the attempt RESULT_TOO_LARGE', async (t) => {
  const { host } = await startHost(t, { config: { limits: { ...limits, maxParamsBytes: 4 * KIB } } });
  host.register({
    name: 'returns',
    handler: (ctx: JobContext<{ n: number; kind: string }>) => (ctx.params.kind === 'string' ? 'é'.repeat(ctx.params.n) : sized(ctx.params.n)),
  });
  const run = async (params: { n: number; kind: string }) => host.wait((await host.trigger('returns', { params })).runId);
  t.match(await run({ n: KIB, kind: 'object' }), { status: 'succeeded', result: sized(KIB) });
  const over = await run({ n: KIB + 1, kind: 'object' });
  t.match(over, { status: 'failed', result: null, error: { code: 'RESULT_TOO_LARGE' } });
  t.match(over.error?.message, /1025 bytes as JSON, more than limits.maxResultBytes \(1024\)/);
  // A string result: two quotes, then 2 bytes per 'é'.
  t.match(await run({ n: (KIB - 2) / 2, kind: 'string' }), { status: 'succeeded' });
  t.match(await run({ n: (KIB - 2) / 2 + 1, kind: 'string' }), { status: 'failed', error: { code: 'RESULT_TOO_LARGE' } });
});

t.test('maxEventBytes inline: ctx.emit of a payload past the limit throws EVENT_TOO_LARGE in the handler', async (t) => {
  const { host, of } = await startHost(t, { config: { limits: { ...limits, maxParamsBytes: 4 * KIB } } });
  host.register({ name: 'hears', on: ['said'], handler: () => null });
  host.register({
    name: 'says',
    handler: (ctx: JobContext) => {
      ctx.emit('said', sized(KIB));
      try {
        ctx.emit('said', sized(KIB + 1));
        return 'no error';
      } catch (err) {
        return (err as { code: string }).code;
      }
    },
  });
  const queued = nextEvent(host, (e) => e.type === 'run.queued' && e.data.job === 'hears');
  t.match(await host.wait((await host.trigger('says')).runId), { status: 'succeeded', result: 'EVENT_TOO_LARGE' });
  await queued;
  t.equal(of('run.queued').filter((e) => e.data.job === 'hears').length, 1, 'only the payload within the limit made a run');
});

const workerPlugin = `export default {
  name: 'threaded',
  handler(ctx) {
    if (ctx.params.emit) {
      try { ctx.emit('said', { s: 'x'.repeat(ctx.params.emit - 8) }); return 'emitted'; } catch (err) { return err.code; }
    }
    return { s: 'x'.repeat(ctx.params.n - 8) };
  },
};
`;

t.test('in a worker thread: the result and ctx.emit are measured where they become JSON, with the same edges', async (t) => {
  const h = await pluginHost(t, { 'threaded.mjs': workerPlugin }, { config: { limits: { ...limits, maxParamsBytes: 4 * KIB } } });
  t.equal(h.host.job('threaded')!.isolation, 'worker');
  const run = async (params: Record<string, number>) => h.host.wait((await h.host.trigger('threaded', { params })).runId);
  t.match(await run({ n: KIB }), { status: 'succeeded', result: { s: 'x'.repeat(KIB - 8) } });
  const over = await run({ n: KIB + 1 });
  t.match(over, { status: 'failed', result: null, error: { code: 'RESULT_TOO_LARGE' } });
  t.equal(over.attempts.length, 1);
  t.match(await run({ emit: KIB }), { status: 'succeeded', result: 'emitted' });
  t.match(await run({ emit: KIB + 1 }), { status: 'succeeded', result: 'EVENT_TOO_LARGE' });
  // The limit is read per attempt: an edit applies to the next run, in the thread too.
  h.host.applyConfig({ workers: { size: 2, grace: 1000 }, limits: { ...limits, maxParamsBytes: 4 * KIB, maxResultBytes: 2 * KIB } });
  t.match(await run({ n: KIB + 1 }), { status: 'succeeded' });
});
