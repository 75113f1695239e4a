import { pino } from 'pino';
import t from 'tap';
import { z } from 'zod';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost } from '../../../core/engine/host.js';
import { createServer, useServer } from '../../../core/server/server.js';
import { captureLogger, gate, startHost, tempDir } from '../../helpers.js';

const noop = (): undefined => undefined;

t.test('register replaces a job of the same name; runs in flight finish on the old version', async (t) => {
  const { host, of } = await startHost(t);
  const release = gate();
  host.register({
    name: 'job',
    handler: async () => {
      await release.promise;
      return 'v1';
    },
  });
  const old = await host.trigger('job');
  host.register({ name: 'job', concurrency: 2, handler: () => 'v2' });
  const fresh = await host.trigger('job');
  t.equal((await host.wait(fresh.runId)).result, 'v2');
  release.open();
  t.equal((await host.wait(old.runId)).result, 'v1');
  t.same(
    of('job.registered').map((e) => e.data.job),
    ['job'],
  );
  t.equal(of('job.updated').length, 1);
});

t.test('unregister: queued runs wait for the job to come back', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'job', handler: noop });
  host.pause();
  const queued = await host.trigger('job');
  t.ok(host.unregister('job'));
  t.notOk(host.unregister('job'));
  host.resume();
  await new Promise((r) => setImmediate(r));
  t.equal((await host.run(queued.runId))!.status, 'queued');
  await t.rejects(host.trigger('job'), { code: 'JOB_NOT_FOUND' });
  host.register({ name: 'job', handler: () => 'back' });
  t.equal((await host.wait(queued.runId)).result, 'back');
});

t.test('params: validated on every trigger, merged over config defaults', async (t) => {
  const { host } = await startHost(t, { config: { jobs: { clean: { params: { dir: '/var/tmp' } } } } });
  let seen: unknown;
  host.register(
    definePlugin({
      name: 'clean',
      params: z.object({ dir: z.string(), days: z.number().int().min(1).default(7) }),
      handler: (ctx) => {
        seen = ctx.params;
      },
    }),
  );
  await host.wait((await host.trigger('clean')).runId);
  t.same(seen, { dir: '/var/tmp', days: 7 });
  await host.wait((await host.trigger('clean', { params: { dir: '/x', days: 2 } })).runId);
  t.same(seen, { dir: '/x', days: 2 });
  await t.rejects(host.trigger('clean', { params: { days: 0 } }), {
    code: 'INVALID_PARAMS',
    message: /^params\.days: /,
    details: { issues: [{ path: 'days' }] },
  });
  await t.rejects(host.trigger('clean', { params: 'nope' }), { code: 'INVALID_PARAMS' });
  host.register({ name: 'free', handler: noop });
  await t.rejects(host.trigger('free', { params: [1] }), { code: 'INVALID_PARAMS', message: /expected an object/ });
  await t.rejects(host.trigger('free', { params: { n: 1n } }), { code: 'INVALID_PARAMS', message: /JSON/ });
  t.same((await host.run((await host.trigger('free', { params: { a: 1 } })).runId))!.params, { a: 1 });
  await t.rejects(host.trigger('free', { priority: 1.5 }), { code: 'INVALID_BODY' });
  await t.rejects(host.trigger('free', { key: '' }), { code: 'INVALID_BODY' });
  await t.rejects(host.trigger('nope'), { code: 'JOB_NOT_FOUND' });
});

t.test('jobs.<name>.params the schema refuses are a config error naming the key', async (t) => {
  const { host } = await startHost(t);
  host.register(definePlugin({ name: 'nightly', schedule: '* * * * *', params: z.object({ dir: z.string(), days: z.number() }), handler: noop }));
  // A key the config gives, of the wrong type: refused at the edit, with its path.
  t.throws(() => host.applyConfig({ jobs: { nightly: { params: { dir: 5 } } } }), {
    code: 'CONFIG_INVALID',
    message: /^jobs\.nightly\.params\.dir: .*\(the job's params schema\)$/,
    details: { path: 'jobs.nightly.params.dir' },
  });
  // A required key left to each trigger is no issue of the config's.
  host.applyConfig({ jobs: { nightly: { params: { dir: '/tmp' } } } });
  await t.rejects(host.trigger('nightly'), { code: 'INVALID_PARAMS', message: /^params\.days: / });
  t.equal(((await host.run((await host.trigger('nightly', { params: { days: 2 } })).runId))!.params as { dir: string }).dir, '/tmp');
  // A strict schema's unknown key is named too.
  host.register(definePlugin({ name: 'strict', params: z.strictObject({ dir: z.string() }), handler: noop }));
  t.throws(() => host.applyConfig({ jobs: { strict: { params: { dir: '/a', bogus: 1 } } } }), {
    code: 'CONFIG_INVALID',
    details: { path: 'jobs.strict.params.bogus' },
  });
  // A plugin whose schema the config's params do not fit is refused the same way.
  host.applyConfig({ jobs: { other: { params: { n: 'x' } } } });
  t.throws(() => host.register(definePlugin({ name: 'other', params: z.object({ n: z.number() }), handler: noop })), {
    code: 'CONFIG_INVALID',
    details: { path: 'jobs.other.params.n' },
  });
});

t.test('a schedule fire whose params (jobs.<name>.params) the schema refuses is run.skipped invalid-params, not only a log line', async (t) => {
  const { logger, lines } = captureLogger();
  const { host, clock, of } = await startHost(t, { config: { jobs: { nightly: { params: { dir: 'tmp' } } } }, logger });
  // Refused as a whole (no key of the config's to name): only a fire finds it.
  const params = z.object({ dir: z.string() }).refine((p) => p.dir.startsWith('/'), 'dir: expected an absolute path');
  host.register(definePlugin({ name: 'nightly', schedule: '* * * * *', params, handler: noop }));
  await clock.advance(60_000);
  await host.flush();
  t.match(
    of('run.skipped').map((e) => e.data),
    [{ job: 'nightly', reason: 'invalid-params', source: 'schedule', detail: /^params: dir: expected an absolute path/ }],
  );
  t.equal((await host.runs({ job: 'nightly' })).items.length, 0, 'the fire made no run');
  // A caller's trigger is answered instead: no event for it.
  await t.rejects(host.trigger('nightly'), { code: 'INVALID_PARAMS' });
  t.equal(of('run.skipped').length, 1);
  // The job's own rules at work: a warning without a stack, not an error of the host's.
  t.match(
    lines.filter((l) => l['job'] === 'nightly' && (l['level'] as number) >= 40),
    [{ level: 40, code: 'INVALID_PARAMS' }],
  );
  t.notOk(lines.some((l) => l['job'] === 'nightly' && 'err' in l));
});

t.test('createHost options of the wrong shape are CONFIG_INVALID naming the option; null trigger and wait options are none', async (t) => {
  for (const [options, path] of [
    [null, 'createHost'],
    [{ clock: 5 }, 'clock'],
    [{ random: 'x' }, 'random'],
    [{ cwd: 5 }, 'cwd'],
    [{ logger: {} }, 'logger'],
    [{ processHandlers: 'yes' }, 'processHandlers'],
    [{ plugins: {} }, 'plugins'],
  ] as const) {
    t.throws(() => createHost(options as never), { code: 'CONFIG_INVALID', details: { path } }, JSON.stringify(options));
  }
  const { host } = await startHost(t);
  host.register({ name: 'plain', handler: () => 'ok' });
  const { runId } = await host.trigger('plain', null as never);
  t.equal((await host.wait(runId, null as never)).result, 'ok');
});

t.test("register's source is what the plugins directory compiles: a path is PLUGIN_INVALID naming it, not a crash at the first run", async (t) => {
  const { host } = await startHost(t);
  t.throws(() => host.register({ name: 'embedded', handler: noop }, { source: '/srv/app/jobs/embedded.js' as never }), {
    code: 'PLUGIN_INVALID',
    message: /^source: expected the compiled plugin/,
    details: { path: 'source' },
  });
  t.equal(host.job('embedded'), undefined, 'nothing registered');
  host.register({ name: 'embedded', handler: () => 'inline' });
  t.equal((await host.wait((await host.trigger('embedded')).runId)).result, 'inline', 'without it the handler runs inline');
});

t.test('disabled jobs refuse triggers; the flag is emitted and shown', async (t) => {
  const { host, of } = await startHost(t);
  host.register({ name: 'job', handler: noop });
  await host.disable('job');
  t.equal(host.job('job')!.enabled, false);
  await t.rejects(host.trigger('job'), { code: 'SKIPPED', details: { reason: 'disabled' } });
  await host.enable('job');
  t.ok((await host.trigger('job')).runId);
  t.same(
    of('job.disabled').map((e) => e.data.job),
    ['job'],
  );
  t.same(
    of('job.enabled').map((e) => e.data.job),
    ['job'],
  );
  await t.rejects(host.enable('nope'), { code: 'JOB_NOT_FOUND' });
});

t.test('publish: app events enqueue subscribed jobs with the payload as params, after their delay', async (t) => {
  const { host, clock, of } = await startHost(t);
  const got: unknown[] = [];
  host.register(
    definePlugin({
      name: 'ship',
      params: z.object({ orderId: z.string() }),
      on: [{ event: 'shipment.created', delay: '30s' }],
      handler: (ctx) => {
        got.push(ctx.params.orderId);
      },
    }),
  );
  host.register({
    name: 'audit',
    on: ['shipment.created', 'file.uploaded'],
    handler: (ctx: JobContext) => {
      got.push(ctx.params);
    },
  });
  const res = await host.publish('shipment.created', { orderId: 'o-1' });
  t.equal(res.enqueued.length, 2);
  t.same(res.errors, []);
  const [shipRun, auditRun] = await Promise.all(res.enqueued.map((id) => host.run(id)));
  t.match(shipRun, { source: 'event', event: 'shipment.created', runAt: new Date(clock.now() + 30_000).toISOString() });
  await host.wait(auditRun!.id);
  t.same(got, [{ orderId: 'o-1' }]);
  await clock.advance(30_000);
  await host.wait(shipRun!.id);
  t.same(got, [{ orderId: 'o-1' }, 'o-1']);
  const bad = await host.publish('shipment.created', { wrong: true });
  t.match(bad.errors, [{ job: 'ship', code: 'INVALID_PARAMS' }]);
  t.equal(bad.enqueued.length, 1);
  t.same(await host.publish('nobody.listens', {}), { enqueued: [], skipped: [], errors: [] });
  // a disabled subscriber is refused like any trigger: reported, and run.skipped emitted
  await host.disable('audit');
  const refused = await host.publish('shipment.created', { orderId: 'o-2' });
  t.same(refused.skipped, [{ job: 'audit', reason: 'disabled' }]);
  t.equal(refused.enqueued.length, 1);
  t.match(
    of('run.skipped').map((e) => e.data),
    [{ job: 'audit', reason: 'disabled', source: 'event' }],
  );
  await host.enable('audit');
  // a handler can publish too
  host.register({ name: 'upload', handler: (ctx: JobContext) => ctx.emit('file.uploaded', { file: 'a.txt' }) });
  await host.wait((await host.trigger('upload')).runId);
  await new Promise((r) => setImmediate(r));
  t.same((await host.runs({ job: 'audit', limit: 1 })).items[0]!.params, { file: 'a.txt' });
});

t.test('notifications are emitted and kept, newest first', async (t) => {
  const { host, of } = await startHost(t);
  host.register({
    name: 'cleanup',
    notify: { title: 'Temp files cleaned', message: 'Removed {{result.count}} files', customTitle: true, customMessage: true, tags: ['maintenance'] },
    handler: () => ({ count: 3 }),
  });
  host.register({ name: 'quiet', handler: noop });
  const { runId } = await host.trigger('cleanup');
  await host.wait(runId);
  await host.wait((await host.trigger('quiet')).runId);
  t.match(
    of('notification').map((e) => e.data),
    [{ job: 'cleanup', runId, status: 'succeeded', title: 'Temp files cleaned', message: 'Removed 3 files', priority: 'medium', tags: ['maintenance'] }],
  );
  const list = await host.notifications();
  t.equal(list.items.length, 1);
  t.equal(list.items[0]!.runId, runId);
});

t.test('job view and stats', async (t) => {
  const { host } = await startHost(t);
  host.register(
    definePlugin({
      name: 'report',
      description: 'Daily report',
      schedule: '0 6 * * *',
      params: z.object({ day: z.string().optional() }),
      handler: noop,
    }),
  );
  host.register({
    name: 'fails',
    queue: 'critical',
    handler: () => {
      throw new Error('x');
    },
  });
  for (let i = 0; i < 3; i++) await host.wait((await host.trigger('report')).runId);
  await host.wait((await host.trigger('fails')).runId);
  const view = host.job('report')!;
  t.match(view, {
    name: 'report',
    description: 'Daily report',
    schedule: '0 6 * * *',
    timezone: 'UTC',
    enabled: true,
    file: null,
    nextRun: '2026-01-06T06:00:00.000Z',
    lastRun: { status: 'succeeded' },
    counts: { succeeded: 3, failed: 0, canceled: 0, queued: 0, running: 0 },
    paramsSchema: { type: 'object', properties: { day: { type: 'string' } } },
  });
  t.same(
    host.jobs().map((j) => j.name),
    ['fails', 'report'],
  );
  const stats = host.stats();
  t.match(stats, {
    state: 'running',
    totals: { runs: 4, succeeded: 3, failed: 1, canceled: 0, queued: 0, running: 0 },
    successRate: 0.75,
    jobs: { total: 2, enabled: 2, running: 0, scheduled: 1 },
    perJob: { report: { count: 3, failed: 0, successRate: 1 }, fails: { count: 1, failed: 1, successRate: 0 } },
    queues: { critical: 0, default: 0, low: 0 },
  });
  t.type(stats.perJob['report']!.p50Ms, 'number');
  t.type(stats.perJob['report']!.p95Ms, 'number');
});

t.test('events(): async iteration with filters and since replay', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'a', handler: noop });
  host.register({ name: 'b', handler: noop });
  const startSeq = host.bus.seq;
  await host.wait((await host.trigger('a')).runId);
  await host.wait((await host.trigger('b')).runId);
  const it = host.events({ job: ['a'], type: ['run.*'], since: startSeq });
  const got: AnyHostEvent[] = [];
  for await (const e of it) {
    got.push(e);
    if (e.type === 'run.succeeded') break;
  }
  t.same(
    got.map((e) => e.type),
    ['run.queued', 'run.started', 'run.succeeded'],
  );
  t.ok(got.every((e) => e.data.job === 'a'));
});

t.test('lifecycle: triggers before start and after stop are refused; stop is idempotent', async (t) => {
  const { host, of } = await startHost(t, { start: false });
  host.register({ name: 'a', handler: noop });
  await t.rejects(host.trigger('a'), { code: 'NOT_STARTED' });
  await host.start();
  await t.rejects(host.start(), { code: 'ALREADY_STARTED', message: /cannot start a host that is running/ });
  // A service plugged in now would never start (useServer after the start never listened, silently).
  t.throws(() => host.use({ name: 'http', start: async () => undefined, stop: async () => undefined }), {
    code: 'ALREADY_STARTED',
    message: /add it before host.start\(\)/,
  });
  t.throws(() => useServer(host, { host: '127.0.0.1', port: 0 }), { code: 'ALREADY_STARTED', message: /call it before the start/ });
  // Misspelt options were ignored silently: a trigger without its delay, a host without its config.
  await t.rejects(host.trigger('a', { dealy: 5 } as never), { code: 'INVALID_BODY', message: /^dealy: unknown trigger option/ });
  t.throws(() => createHost({ configg: {} } as never), { code: 'CONFIG_INVALID', message: /^configg: unknown option/ });
  t.throws(() => createServer(host, { prot: 1 } as never), { code: 'CONFIG_INVALID', message: /^prot: unknown option/ });
  await host.stop();
  await host.stop();
  await t.rejects(host.trigger('a'), { code: 'SHUTTING_DOWN' });
  // A flag set now would live in memory only, lost at the next start: refused, not reported done.
  await t.rejects(host.disable('a'), { code: 'SHUTTING_DOWN' });
  await t.rejects(host.enable('a'), { code: 'SHUTTING_DOWN' });
  t.equal(host.job('a')!.enabled, true);
  await t.rejects(host.start(), { code: 'ALREADY_STARTED', message: /that is stopped/ });
  t.same(of('host.started').length, 1);
  t.same(of('host.stopped').length, 1);
  t.equal(host.state, 'stopped');
});

t.test('stop: a retry scheduled by an attempt failing in the grace leaves no timer behind', async (t) => {
  const dir = tempDir(t);
  const { host, clock } = await startHost(t, { dir });
  const fail = gate();
  host.register({
    name: 'flaky',
    retry: { attempts: 3, delay: '1m' },
    handler: async () => {
      await fail.promise;
      throw new Error('boom');
    },
  });
  const { runId } = await host.trigger('flaky');
  const stopping = host.stop({ graceMs: 5000 });
  fail.open();
  await stopping;
  t.equal(clock.pending(), 0, 'no timer keeps the process alive after stop()');
  const again = await startHost(t, { dir, clock, start: false });
  again.host.register({ name: 'flaky', retry: { attempts: 3, delay: '1m' }, handler: noop });
  await again.host.start();
  t.match(await again.host.run(runId), { status: 'queued', attempts: [{ error: { message: 'boom' } }] });
  await clock.advance(60_000);
  t.equal((await again.host.wait(runId)).status, 'succeeded', 'the retry runs at its time after the restart');
});

t.test('graceful stop: running attempts finish within the grace; longer ones go back to queued', async (t) => {
  const dir = tempDir(t);
  const { host, clock, of } = await startHost(t, { dir });
  const quick = gate();
  host.register({ name: 'quick', handler: () => quick.promise });
  host.register({
    name: 'slow',
    retry: { attempts: 2 },
    handler: (ctx: JobContext) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')))),
  });
  host.register({ name: 'last', handler: () => new Promise(() => undefined) });
  const q = await host.trigger('quick');
  const s = await host.trigger('slow');
  const l = await host.trigger('last');
  const stopping = host.stop({ graceMs: 5000 });
  await t.rejects(host.trigger('quick'), { code: 'SHUTTING_DOWN' });
  quick.open();
  await clock.advance(5000);
  await stopping;
  t.match(
    of('run.queued').map((e) => e.data.runId),
    [q.runId, s.runId, l.runId, s.runId],
    'the requeue is announced',
  );
  const again = await startHost(t, { dir, clock, start: false });
  again.host.register({ name: 'quick', handler: noop });
  again.host.register({ name: 'slow', retry: { attempts: 2 }, handler: noop });
  again.host.register({ name: 'last', handler: noop });
  again.host.pause();
  await again.host.start();
  t.equal((await again.host.run(q.runId))!.status, 'succeeded');
  t.match(await again.host.run(s.runId), { status: 'queued', attempts: [{ error: { code: 'SHUTDOWN' } }] });
  t.match(await again.host.run(l.runId), { status: 'failed', error: { code: 'SHUTDOWN' } });
  again.host.resume();
  t.equal((await again.host.wait(s.runId)).status, 'succeeded', 'the aborted run runs on the next start');
});

t.test('a plugin naming a queue the config lacks runs in default, with a warning', async (t) => {
  const lines: Array<{ msg: string; job?: string }> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const host = createHost({ store: 'memory', config: { store: { dir: tempDir(t) } }, logger });
  host.register({ name: 'typo', queue: 'critcal', handler: noop });
  host.register({ name: 'fine', queue: 'low', handler: noop });
  t.equal(host.job('typo')!.queue, 'default');
  t.equal(host.job('fine')!.queue, 'low');
  t.match(lines, [{ job: 'typo', msg: /queue "critcal" is not in the config's queues; it runs in "default"/ }]);
  t.equal(lines.length, 1);
});

t.test('stop({ graceMs }) takes ms or a duration; anything else is INVALID_DURATION and the host goes on', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'job', handler: noop });
  await t.rejects(host.stop({ graceMs: 'soon' as never }), { code: 'INVALID_DURATION', message: /^graceMs: / });
  await t.rejects(host.stop({ graceMs: -1 }), { code: 'INVALID_DURATION' });
  t.equal(host.state, 'running', 'still running');
  t.match(await host.wait((await host.trigger('job')).runId), { status: 'succeeded' }, 'and still runs jobs');
  await host.stop({ graceMs: '1s' }); // typed as a duration, as the README shows
  t.equal(host.state, 'stopped', "a duration like '1s' is a grace");
});

t.test("wait() and series() refuse what they cannot read with the error's code, not a TypeError", async (t) => {
  const { host } = await startHost(t);
  const hold = gate();
  host.register({ name: 'slow', handler: () => hold.promise });
  const { runId } = await host.trigger('slow');
  await t.rejects(host.wait(runId, { timeout: 'abc' as never }), { code: 'INVALID_DURATION', message: /^timeout: / });
  await t.rejects(host.wait(runId, { signal: 5 as never }), { code: 'INVALID_BODY', message: 'signal: expected an AbortSignal' });
  t.throws(() => host.series('2h' as never), { code: 'INVALID_BODY', message: 'window: expected one of 1h, 24h, 7d' });
  const waiting = host.wait(runId, { timeout: '1h' as never });
  hold.open();
  t.match(await waiting, { status: 'succeeded' }, "a timeout like '1h' is a duration");
});

t.test('runs() checks its query as GET /runs does: INVALID_BODY naming the field', async (t) => {
  const { host } = await startHost(t);
  await t.rejects(host.runs({ limit: 'x' as never }), { code: 'INVALID_BODY', message: /^limit: / });
  await t.rejects(host.runs({ limit: 0 }), { code: 'INVALID_BODY', message: /^limit: / });
  await t.rejects(host.runs({ status: 'weird' as never }), { code: 'INVALID_BODY', message: /^status: / });
  t.same((await host.runs({ status: 'failed', limit: 5 })).items, []);
});

t.test("library input: publish() refuses a name no job could list; createHost() refuses a store other than 'disk' or 'memory'", async (t) => {
  const { host } = await startHost(t);
  for (const bad of ['', ' shipment', 'a b', 'x'.repeat(201), 5 as unknown as string]) {
    await t.rejects(host.publish(bad, {}), { code: 'INVALID_BODY', message: /^event: / }, `publish(${JSON.stringify(bad).slice(0, 20)})`);
  }
  t.same((await host.publish('shipment.created', {})).enqueued, [], 'a good name with no subscriber is no error');
  t.throws(() => createHost({ store: 'floppy' as 'memory' }), { code: 'CONFIG_INVALID', message: /store: expected 'disk' or 'memory' \(got "floppy"\)/ });
  const dir = tempDir(t);
  const mem = createHost({ store: 'memory', cwd: dir });
  t.equal(mem.state, 'created', "'memory' is taken");
});
