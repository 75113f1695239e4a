import t from 'tap';
import { nextEvent, startServer } from '../../helpers.js';

/** `limits` (SPEC §3) over HTTP: each at its edge, in fastify's error shape with a stable code. */

const KIB = 1024;
const limits = { maxParamsBytes: KIB, maxResultBytes: KIB, maxEventBytes: KIB, maxQueued: 2 };
/** `{"s":"…"}` is the string's length plus 8 bytes. */
const sized = (bytes: number): { s: string } => ({ s: 'x'.repeat(bytes - 8) });

t.test('POST /jobs/:name/run: params at maxParamsBytes give 202, one byte more 413 PARAMS_TOO_LARGE', async (t) => {
  const s = await startServer(t, { config: { limits } });
  s.host.register({ name: 'takes', handler: () => null });
  const ok = await s.request('POST', '/jobs/takes/run', { body: { params: sized(KIB) } });
  t.equal(ok.status, 202);
  const over = await s.request('POST', '/jobs/takes/run', { body: { params: sized(KIB + 1) } });
  t.equal(over.status, 413);
  t.match(over.json, {
    statusCode: 413,
    code: 'PARAMS_TOO_LARGE',
    error: 'Payload Too Large',
    message: /1025 bytes as JSON, more than limits.maxParamsBytes \(1024\)/,
  });
  t.equal((await s.host.runs({ job: 'takes' })).items.length, 1);
});

t.test('POST /events/:type: a payload at maxEventBytes gives 202, one byte more 413 EVENT_TOO_LARGE', async (t) => {
  const s = await startServer(t, { config: { limits: { ...limits, maxParamsBytes: 4 * KIB } } });
  s.host.register({ name: 'listens', on: ['thing.happened'], handler: () => null });
  const ok = await s.request('POST', '/events/thing.happened', { body: sized(KIB) });
  t.equal(ok.status, 202);
  t.equal((ok.json['enqueued'] as unknown[]).length, 1);
  const over = await s.request('POST', '/events/thing.happened', { body: sized(KIB + 1) });
  t.equal(over.status, 413);
  t.match(over.json, { statusCode: 413, code: 'EVENT_TOO_LARGE', error: 'Payload Too Large' });
});

t.test('past maxQueued: 503 QUEUE_FULL with Retry-After, for a trigger, an event and a replay', async (t) => {
  const s = await startServer(t, { config: { limits } });
  s.host.register({ name: 'waits', on: ['go'], overlap: 'allow', handler: () => null });
  s.host.register({
    name: 'fails',
    retry: { attempts: 1 },
    handler: () => {
      throw new Error('no');
    },
  });
  const failed = (await s.request('POST', '/jobs/fails/run', { body: {} })).json['runId'] as string;
  t.equal((await s.host.wait(failed)).status, 'failed');
  s.host.pause();
  t.equal((await s.request('POST', '/jobs/waits/run', { body: {} })).status, 202);
  t.equal((await s.request('POST', '/jobs/waits/run', { body: { delay: '1h' } })).status, 202);
  for (const [path, body] of [
    ['/jobs/waits/run', {}],
    ['/events/go', {}],
    [`/runs/${failed}/retry`, undefined],
  ] as const) {
    const full = await s.request('POST', path, body === undefined ? {} : { body });
    t.equal(full.status, 503, path);
    t.equal(full.headers.get('retry-after'), '5', `${path}: Retry-After`);
    t.match(full.json, { statusCode: 503, code: 'QUEUE_FULL', error: 'Service Unavailable', message: /2 runs are waiting/ }, path);
  }
  t.equal((await s.request('GET', '/ready')).status, 200, 'a full queue is back-pressure, not a degraded host');
  s.host.resume();
  await nextEvent(s.host, (e) => e.type === 'run.succeeded' && e.data.job === 'waits');
  t.equal((await s.request('POST', '/jobs/waits/run', { body: {} })).status, 202, 'room again once a run started');
});
