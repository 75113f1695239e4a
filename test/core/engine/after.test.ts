import t from 'tap';
import { z } from 'zod';
import { definePlugin } from '../../../core/contract/plugin.js';
import type { Run } from '../../../core/contract/run.js';
import { afterRunId } from '../../../core/engine/ids.js';
import { captureLogger, gate, startHost, until } from '../../helpers.js';

const fail = (): never => {
  throw new Error('boom');
};

/** The runs of `job`, oldest first. */
async function runsOf(host: { runs(q: { job: string }): Promise<{ items: Run[] }> }, job: string): Promise<Run[]> {
  return (await host.runs({ job })).items.reverse();
}

t.test('after: each status triggers the jobs waiting for it, with the end as params', async (t) => {
  const { host, of } = await startHost(t);
  host.register({
    name: 'extract',
    retry: { attempts: 1 },
    handler: (ctx: { params: { fail?: boolean; slow?: boolean; signal?: AbortSignal } }) => {
      if (ctx.params.fail) fail();
      return { rows: 3 };
    },
  });
  host.register({ name: 'on-success', after: [{ job: 'extract' }], handler: () => 'ok' });
  host.register({ name: 'on-failure', after: [{ job: 'extract', status: 'failed' }], handler: () => 'ok' });
  host.register({ name: 'on-cancel', after: [{ job: 'extract', status: 'canceled' }], handler: () => 'ok' });
  host.register({ name: 'on-end', after: ['extract', { job: 'extract', status: 'finished' }], handler: () => 'ok' });

  const ok = await host.trigger('extract');
  await host.wait(ok.runId);
  const child = await host.wait(afterRunId(ok.runId, 'on-success'));
  t.equal(child.source, 'after');
  t.same(child.after, { runId: ok.runId, job: 'extract' });
  t.same(child.params, { runId: ok.runId, job: 'extract', status: 'succeeded', result: { rows: 3 } });
  t.equal(child.status, 'succeeded');

  const bad = await host.trigger('extract', { params: { fail: true } });
  await host.wait(bad.runId);
  const onFailure = await host.wait(afterRunId(bad.runId, 'on-failure'));
  t.same(onFailure.params, { runId: bad.runId, job: 'extract', status: 'failed', result: null });

  host.pause();
  const canceled = await host.trigger('extract');
  await host.cancel(canceled.runId);
  host.resume();
  const onCancel = await host.wait(afterRunId(canceled.runId, 'on-cancel'));
  t.equal((onCancel.params as { status: string }).status, 'canceled');

  await until(async () => (await runsOf(host, 'on-end')).length === 3, 5000, 'three on-end runs');
  // One run per end however many entries of the job's `after` match it.
  t.same(
    (await runsOf(host, 'on-end')).map((r) => (r.params as { status: string }).status),
    ['succeeded', 'failed', 'canceled'],
  );
  t.same((await runsOf(host, 'on-success')).length, 1, 'no run of on-success for the failed or canceled ends');
  t.same((await runsOf(host, 'on-failure')).length, 1);
  t.same((await runsOf(host, 'on-cancel')).length, 1);
  const queued = of('run.queued').find((e) => e.data.runId === child.id);
  t.equal(queued?.data.source, 'after');
});

t.test('after: a params schema reshapes the end; config jobs.<name>.after replaces the plugin list', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'extract', handler: () => ({ file: 'a.csv' }) });
  host.register({ name: 'other', handler: () => ({ file: 'b.csv' }) });
  host.register(
    definePlugin({
      name: 'load',
      after: [{ job: 'extract' }],
      params: z.object({ runId: z.string(), result: z.object({ file: z.string() }) }).transform((p) => ({ file: p.result.file, from: p.runId })),
      handler: (ctx) => ctx.params.file,
    }),
  );
  t.same(host.job('load')!.after, [{ job: 'extract', status: 'succeeded' }], 'the job view lists what it waits for');
  const parent = await host.trigger('extract');
  const child = await host.wait(afterRunId(parent.runId, 'load'));
  t.same(child.params, { file: 'a.csv', from: parent.runId });
  t.equal(child.result, 'a.csv');

  host.applyConfig({ jobs: { load: { after: [{ job: 'other' }] } } });
  t.same(host.job('load')!.after, [{ job: 'other', status: 'succeeded' }], 'the config list in its place');
  const first = await host.trigger('extract');
  const second = await host.trigger('other');
  await host.wait(first.runId);
  const fromOther = await host.wait(afterRunId(second.runId, 'load'));
  t.equal(fromOther.result, 'b.csv');
  t.equal(await host.run(afterRunId(first.runId, 'load')), undefined, 'extract no longer triggers load');
});

t.test('after: params the schema refuses trigger nothing (logged); a disabled child is skipped', async (t) => {
  const { logger, lines } = captureLogger();
  const { host, of } = await startHost(t, { logger });
  host.register({ name: 'extract', handler: () => 'x' });
  host.register(definePlugin({ name: 'strict', after: ['extract'], params: z.object({ nope: z.string() }), handler: () => 'never' }));
  host.register({ name: 'off', enabled: false, after: ['extract'], handler: () => 'never' });
  const parent = await host.trigger('extract');
  await host.wait(parent.runId);
  await until(() => of('run.skipped').length > 0);
  t.match(of('run.skipped')[0]!.data, { job: 'off', reason: 'disabled', source: 'after' });
  t.ok(lines.some((l) => l['job'] === 'strict' && l['level'] === 50 && String(l['msg']).includes('did not trigger')));
  t.equal(await host.run(afterRunId(parent.runId, 'strict')), undefined);
});

t.test('after: a cycle is refused with AFTER_CYCLE naming the jobs, in code and in the config', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'a', after: ['c'], handler: () => 1 });
  host.register({ name: 'b', after: ['a'], handler: () => 1 });
  t.throws(() => host.register({ name: 'c', after: ['b'], handler: () => 1 }), { code: 'AFTER_CYCLE', message: /a → b → c → a|c → a → b → c|b → c → a → b/ });
  t.notOk(host.job('c'), 'the plugin that closes the cycle is not registered');
  t.throws(() => host.register({ name: 'self', after: ['self'], handler: () => 1 }), { code: 'AFTER_CYCLE', message: /self → self/ });
  host.register({ name: 'c', handler: () => 1 });
  t.throws(() => host.applyConfig({ jobs: { c: { after: ['b'] } } }), {
    code: 'AFTER_CYCLE',
    message: /^jobs\.c\.after: the jobs /,
    details: { path: 'jobs.c.after' },
  });
  t.same(host.config.jobs, {}, 'the config edit changed nothing');
});

t.test('after: a job that names a missing job is warned about; it is chained once the job appears', async (t) => {
  const { logger, lines } = captureLogger();
  const { host } = await startHost(t, { logger });
  host.register({ name: 'load', after: ['extract'], handler: () => 'loaded' });
  t.ok(lines.some((l) => l['level'] === 40 && String(l['msg']).includes('no plugin defines')));
  host.register({ name: 'extract', handler: () => 1 });
  t.ok(lines.some((l) => l['level'] === 30 && String(l['msg']).includes('exists now')));
  const parent = await host.trigger('extract');
  t.equal((await host.wait(afterRunId(parent.runId, 'load'))).result, 'loaded');
});

t.test('after: a parent that ends during a stop still records its child, queued for the next start', async (t) => {
  const { host, dir } = await startHost(t);
  const release = gate();
  host.register({ name: 'extract', handler: () => release.promise.then(() => 1) });
  host.register({ name: 'load', after: ['extract'], handler: () => 2 });
  const parent = await host.trigger('extract');
  await until(async () => (await host.run(parent.runId))?.status === 'running');
  const stopping = host.stop({ graceMs: 5000 });
  release.open();
  await stopping;
  const again = await startHost(t, { dir, start: false });
  again.host.register({ name: 'extract', handler: () => 1 });
  again.host.register({ name: 'load', after: ['extract'], handler: () => 2 });
  await again.host.start();
  t.equal((await again.host.wait(afterRunId(parent.runId, 'load'))).result, 2);
});
