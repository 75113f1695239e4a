import t from 'tap';
import type { AuditRecord } from '../../../core/contract/audit.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { Run } from '../../../core/contract/run.js';
import { createHost, type Host } from '../../../core/engine/host.js';
import { jobSchema, readyResponse } from '../../../core/server/http-schemas.js';
import { createServer } from '../../../core/server/server.js';
import { gate, startServer, tempDir, until } from '../../helpers.js';

/** Lets queued microtasks and I/O callbacks run: a run the dispatcher would start has started by then. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const statusOf = async (host: Host, id: string): Promise<Run['status'] | undefined> => (await host.run(id))?.status;

t.test('a paused job records triggers (202) and starts none; its running run finishes; resume starts the waiting ones', async (t) => {
  const s = await startServer(t);
  const release = gate();
  let calls = 0;
  s.host.register({
    name: 'slow',
    handler: async () => {
      calls++;
      if (calls === 1) await release.promise;
      return calls;
    },
  });
  const first = (await s.request('POST', '/jobs/slow/run', { body: {} })).json['runId'] as string;
  await until(async () => (await statusOf(s.host, first)) === 'running', 5000, 'the first run to start');

  const paused = await s.request('POST', '/jobs/slow/pause');
  t.equal(paused.status, 200);
  t.match(jobSchema.parse(paused.json), { name: 'slow', paused: true, pause: { job: true, queue: false } });
  t.equal(s.of('job.paused').length, 1);
  t.same(s.of('job.paused')[0]!.data, { job: 'slow' });
  t.equal((await s.request('POST', '/jobs/slow/pause')).status, 200, 'a second pause is no error');
  t.equal(s.of('job.paused').length, 1, 'and no second event');

  const second = await s.request('POST', '/jobs/slow/run', { body: {} });
  t.equal(second.status, 202, 'a trigger is still accepted');
  const secondId = second.json['runId'] as string;
  release.open();
  t.equal((await s.host.wait(first)).status, 'succeeded', 'the running run finishes');
  await settle();
  t.equal(await statusOf(s.host, secondId), 'queued', 'the waiting run did not start');
  t.equal(calls, 1);

  const view = jobSchema.parse((await s.request('GET', '/jobs/slow')).json);
  t.match(view, { paused: true, counts: { queued: 1, running: 0 } });
  const ready = await s.request('GET', '/ready');
  t.equal(ready.status, 200, 'a pause is no reason for 503');
  t.same(readyResponse.parse(ready.json).paused, { jobs: ['slow'], queues: [] });

  const resumed = await s.request('POST', '/jobs/slow/resume');
  t.match(resumed.json, { paused: false, pause: { job: false } });
  t.equal((await s.host.wait(secondId)).status, 'succeeded', 'resume starts the waiting run');
  t.same(
    s.events.filter((e) => e.type === 'job.paused' || e.type === 'job.resumed').map((e) => e.type),
    ['job.paused', 'job.resumed'],
  );
  t.same(readyResponse.parse((await s.request('GET', '/ready')).json).paused, { jobs: [], queues: [] });

  const missing = await s.request('POST', '/jobs/nope/pause');
  t.equal(missing.status, 404);
  t.equal(missing.json['code'], 'JOB_NOT_FOUND');
  const noQueue = await s.request('POST', '/queues/nope/pause');
  t.equal(noQueue.status, 404);
  t.equal(noQueue.json['code'], 'QUEUE_NOT_FOUND');
  t.equal((await s.request('POST', '/queues/Bad%20Name/pause')).status, 400, 'a queue name is checked');

  const audit = (await s.request('GET', '/audit')).json['items'] as AuditRecord[];
  t.same(
    audit.slice(0, 7).map((r) => [r.action, r.target, r.outcome, r.code]),
    [
      ['queue.pause', 'queue:Bad Name', 'error', 'INVALID_BODY'],
      ['queue.pause', 'queue:nope', 'error', 'QUEUE_NOT_FOUND'],
      ['job.pause', 'job:nope', 'error', 'JOB_NOT_FOUND'],
      ['job.resume', 'job:slow', 'ok', null],
      ['job.run', 'job:slow', 'ok', null],
      ['job.pause', 'job:slow', 'ok', null],
      ['job.pause', 'job:slow', 'ok', null],
    ],
    'pause and resume are audited like the other changes',
  );
});

t.test('a paused queue holds every job in it; a job pause and its queue pause are apart; schedule fires wait', async (t) => {
  const s = await startServer(t, { config: { queues: { default: 2, low: 1 } } });
  const ran: string[] = [];
  const handler = (name: string) => () => void ran.push(name);
  s.host.register({ name: 'bulk', queue: 'low', schedule: '* * * * *', handler: handler('bulk') });
  s.host.register({ name: 'bulk-two', queue: 'low', handler: handler('bulk-two') });
  s.host.register({ name: 'main', handler: handler('main') });

  const paused = await s.request('POST', '/queues/low/pause');
  t.same(paused.json, { queue: 'low', paused: true, jobs: ['bulk', 'bulk-two'] });
  t.same(s.of('queue.paused')[0]!.data, { job: null, queue: 'low' });
  t.match(s.host.job('bulk-two'), { paused: true, pause: { job: false, queue: true } });

  const two = (await s.request('POST', '/jobs/bulk-two/run', { body: {} })).json['runId'] as string;
  const main = (await s.request('POST', '/jobs/main/run', { body: {} })).json['runId'] as string;
  t.equal((await s.host.wait(main)).status, 'succeeded', 'a job of another queue runs');
  // A schedule fire while paused is recorded as a queued run (it waits, as BullMQ keeps jobs in a paused queue).
  await s.clock.advance(60_000);
  await until(() => s.of('run.queued').some((e) => e.data.job === 'bulk' && e.data.source === 'schedule'), 5000, 'the schedule fire');
  const fired = s.of('run.queued').find((e) => e.data.job === 'bulk')!.data.runId;
  await settle();
  t.equal(await statusOf(s.host, two), 'queued');
  t.equal(await statusOf(s.host, fired), 'queued', 'the fire waits too');
  t.same(ran, ['main']);

  // The job's own pause outlives its queue's resume.
  await s.request('POST', '/jobs/bulk/pause');
  const resumed = await s.request('POST', '/queues/low/resume');
  t.same(resumed.json, { queue: 'low', paused: false, jobs: ['bulk', 'bulk-two'] });
  t.equal((await s.host.wait(two)).status, 'succeeded', 'the queue resumed: bulk-two runs');
  await settle();
  t.equal(await statusOf(s.host, fired), 'queued', 'bulk is still paused itself');
  t.same(readyResponse.parse((await s.request('GET', '/ready')).json).paused, { jobs: ['bulk'], queues: [] });
  await s.request('POST', '/jobs/bulk/resume');
  t.equal((await s.host.wait(fired)).status, 'succeeded');
});

t.test('pauses survive a restart on the same store directory', async (t) => {
  const dir = tempDir(t);
  const config = { store: { dir }, queues: { default: 1, low: 1 } };
  const ran: string[] = [];
  const make = (): Host => {
    const host = createHost({ config, logger: silentLogger() });
    host.register({ name: 'held', handler: () => void ran.push('held') });
    host.register({ name: 'other', queue: 'low', handler: () => void ran.push('other') });
    return host;
  };
  const before = make();
  await before.start();
  await before.pauses.job('held', true);
  await before.pauses.queue('low', true);
  const held = (await before.trigger('held')).runId;
  const other = (await before.trigger('other')).runId;
  await settle();
  await before.stop({ graceMs: 0 });

  const after = make();
  await after.start();
  t.teardown(() => after.stop({ graceMs: 0 }));
  const server = createServer(after, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());
  const ready = readyResponse.parse(await (await fetch(`${url}/ready`)).json());
  t.same(ready.paused, { jobs: ['held'], queues: ['low'] }, 'the new host finds both pauses');
  t.match(jobSchema.parse(await (await fetch(`${url}/jobs/held`)).json()), { paused: true });
  await settle();
  t.equal(await statusOf(after, held), 'queued');
  t.equal(await statusOf(after, other), 'queued');
  t.same(ran, []);
  await after.pauses.job('held', false);
  await after.pauses.queue('low', false);
  t.equal((await after.wait(held)).status, 'succeeded');
  t.equal((await after.wait(other)).status, 'succeeded');
});

t.test('roles: a viewer may not pause; an operator limited by jobs globs pauses its jobs but no queue; OpenAPI lists the routes', async (t) => {
  const tokens = [
    { name: 'dash', token: 'viewer-token-0123456789abcdef', role: 'viewer' as const },
    { name: 'ci', token: 'operator-token-0123456789abcdef', role: 'operator' as const, jobs: ['deploy-*'] },
  ];
  const s = await startServer(t, { config: { server: { tokens } } });
  s.host.register({ name: 'deploy-web', handler: () => 'ok' });
  s.host.register({ name: 'billing', handler: () => 'ok' });
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
  const viewer = as(tokens[0]!.token);
  const ci = as(tokens[1]!.token);
  t.equal((await s.request('POST', '/jobs/deploy-web/pause', viewer)).status, 403);
  t.equal((await s.request('POST', '/jobs/deploy-web/pause', ci)).status, 200);
  t.equal((await s.request('POST', '/jobs/billing/pause', ci)).status, 403, 'outside its globs');
  const queue = await s.request('POST', '/queues/default/pause', ci);
  t.equal(queue.status, 403, 'a queue holds jobs beyond its globs');
  t.equal(queue.json['code'], 'FORBIDDEN');
  t.same(s.host.pauses.list(), { jobs: ['deploy-web'], queues: [] });

  const doc = (await s.request('GET', '/openapi.json', viewer)).json as { paths: Record<string, Record<string, { description?: string }>> };
  for (const p of ['/jobs/{name}/pause', '/jobs/{name}/resume', '/queues/{name}/pause', '/queues/{name}/resume']) {
    t.match(doc.paths[p]?.['post']?.description, /Needs the `operator` role \(audited as `(job|queue)\.(pause|resume)`\)/, p);
  }
});
