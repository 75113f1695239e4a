import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { ERROR_CODES } from '../../../core/contract/errors.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { jobSchema, page, readyResponse, runSchema, statsResponse } from '../../../core/server/http-schemas.js';
import { notificationSchema } from '../../../core/server/notification-schemas.js';
import { createServer, type ServerPlugin, useServer } from '../../../core/server/server.js';
import { gate, startHost, startServer, type TestResponse, tempDir, until } from '../../helpers.js';

const noop = (): undefined => undefined;

/** Every error answer has fastify's shape with a code from the table and its status. */
function isError(t: Test, res: TestResponse, status: number, code: keyof typeof ERROR_CODES): void {
  t.equal(res.status, status, `${code}: status`);
  t.match(res.json, { statusCode: status, code, error: String, message: String }, `${code}: shape`);
  t.equal(ERROR_CODES[code].status, status, `${code}: the table agrees`);
}

const runId = (res: TestResponse): string => res.json['runId'] as string;

t.test('health, ready, 404 for GET / and for unknown routes, 405 for known ones', async (t) => {
  const { request } = await startServer(t);
  t.match((await request('GET', '/health')).json, { status: 'ok', state: 'running' });
  const ready = await request('GET', '/ready');
  t.equal(ready.status, 200);
  const { eventLoop, ...rest } = readyResponse.parse(ready.json);
  t.same(rest, {
    ready: true,
    status: 'ready',
    state: 'running',
    scheduler: { running: true, scheduledJobs: 0 },
    jobs: { total: 0, enabled: 0, running: 0 },
    stale: [],
    paused: { jobs: [], queues: [] },
    store: { writable: true, error: null },
    backend: { kind: 'local', available: true, target: null, error: null, since: null },
    warnings: [],
  });
  t.match(eventLoop, { maxDelayMs: 500, slow: false });
  isError(t, await request('GET', '/'), 404, 'NOT_FOUND');
  isError(t, await request('GET', '/jobs/x/y/z'), 404, 'NOT_FOUND');
  const wrong = await request('DELETE', '/jobs/x');
  isError(t, wrong, 405, 'METHOD_NOT_ALLOWED');
  t.equal(wrong.headers.get('allow'), 'GET, HEAD');
  isError(t, await request('GET', '/jobs/x/run'), 405, 'METHOD_NOT_ALLOWED');
});

t.test('jobs: list, one, enable/disable, 404 JOB_NOT_FOUND', async (t) => {
  const { host, request } = await startServer(t);
  host.register(definePlugin({ name: 'report', description: 'Daily', schedule: '0 6 * * *', params: z.object({ day: z.string() }), handler: noop }));
  host.register({ name: 'other', handler: noop });
  const list = await request('GET', '/jobs');
  t.equal(list.status, 200);
  t.same(
    page(jobSchema)
      .parse(list.json)
      .items.map((j) => j.name),
    ['other', 'report'],
  );
  const one = await request('GET', '/jobs/report');
  t.match(jobSchema.parse(one.json), { name: 'report', description: 'Daily', schedule: '0 6 * * *', enabled: true, paramsSchema: { type: 'object' } });
  isError(t, await request('GET', '/jobs/nope'), 404, 'JOB_NOT_FOUND');
  t.match((await request('POST', '/jobs/report/disable')).json, { name: 'report', enabled: false });
  t.equal(host.job('report')!.enabled, false);
  t.match((await request('POST', '/jobs/report/enable')).json, { name: 'report', enabled: true });
  isError(t, await request('POST', '/jobs/nope/enable'), 404, 'JOB_NOT_FOUND');
  // A segment over 200 characters: refused by the router, as a path parameter that fails its schema is.
  isError(t, await request('GET', `/jobs/${'x'.repeat(300)}`), 400, 'INVALID_BODY');
});

t.test('POST /jobs/:name/run: 202 once the run is on disk, with source http', async (t) => {
  const { host, dir, request } = await startServer(t);
  host.pause();
  host.register({ name: 'job', handler: noop });
  const res = await request('POST', '/jobs/job/run', { body: { params: { a: 1 }, priority: 3, key: 'k1' } });
  t.equal(res.status, 202);
  t.same(Object.keys(res.json), ['runId']);
  const journal = readdirSync(dir).filter((f) => f.startsWith('journal-'));
  t.ok(
    journal.some((f) => readFileSync(path.join(dir, f), 'utf8').includes(runId(res))),
    'the run is in the journal when 202 arrives',
  );
  t.match(await host.run(runId(res)), { source: 'http', params: { a: 1 }, priority: 3, key: 'k1', status: 'queued' });
  const empty = await request('POST', '/jobs/job/run');
  t.equal(empty.status, 202, 'content-type JSON with no body at all is fine');
  const delayed = await request('POST', '/jobs/job/run', { body: { delay: '30s' } });
  t.match(await host.run(runId(delayed)), { runAt: new Date(host.clock.now() + 30_000).toISOString() });
  const at = await request('POST', '/jobs/job/run', { body: { runAt: '2030-01-01T00:00:00.000Z' } });
  t.match(await host.run(runId(at)), { runAt: '2030-01-01T00:00:00.000Z' });
  isError(t, await request('POST', '/jobs/job/run', { body: { delay: 'soon' } }), 400, 'INVALID_DURATION');
  const never = await request('POST', '/jobs/job/run', { body: { runAt: 'never' } });
  isError(t, never, 400, 'INVALID_BODY');
  t.same(
    never.json['issues'],
    [{ path: 'body.runAt', message: 'not an ISO 8601 time such as 2026-01-05T12:00:00Z: never' }],
    'issues, as a body the schema refuses has (the path says where in the request)',
  );
  // Date.parse would read these; the API says ISO 8601 or ms since the epoch.
  for (const runAt of ['1 Jan 2099', 'Tue, 01 Jan 2099 00:00:00 GMT', -1]) {
    isError(t, await request('POST', '/jobs/job/run', { body: { runAt } }), 400, 'INVALID_BODY');
  }
  for (const runAt of ['2099-01-01', '2099-01-01T10:00:00+02:00', '2099-01-01T10:00Z', 0]) {
    t.equal((await request('POST', '/jobs/job/run', { body: { runAt } })).status, 202, `runAt ${runAt}`);
  }
  const both = await request('POST', '/jobs/job/run', { body: { delay: '30s', runAt: '2030-01-01T00:00:00.000Z' } });
  isError(t, both, 400, 'INVALID_BODY');
  t.match(both.json, { message: 'body.runAt: give delay or runAt, not both', issues: [{ path: 'body.runAt' }] }, 'both: refused, not one silently winning');
  // Valid JSON refused as prototype poisoning says so, not "not valid JSON".
  const poisoned = await request('POST', '/jobs/job/run', { body: '{"__proto__":{"x":1}}' });
  t.match(poisoned, { status: 400, json: { code: 'BAD_REQUEST', message: /prototype poisoning/ } });
  t.match(await request('POST', '/events/%F0%9F%98%80', { body: {} }), { status: 400, json: { code: 'INVALID_BODY', issues: [{ path: 'params.type' }] } });
  // times a Date cannot hold are the client's mistake (400), never a 500
  isError(t, await request('POST', '/jobs/job/run', { body: { runAt: 1e20 } }), 400, 'INVALID_BODY');
  isError(t, await request('POST', '/jobs/job/run', { body: { runAt: '+275760-09-13T00:00:00.000Z' } }), 400, 'INVALID_BODY');
  isError(t, await request('POST', '/jobs/job/run', { body: { delay: '99999999999d' } }), 400, 'INVALID_DURATION');
});

t.test('POST /jobs/:name/run: 400 INVALID_PARAMS with issues, INVALID_BODY, 404', async (t) => {
  const { host, request } = await startServer(t);
  host.register(definePlugin({ name: 'clean', params: z.object({ dir: z.string(), days: z.number().int().min(1) }), handler: noop }));
  const bad = await request('POST', '/jobs/clean/run', { body: { params: { dir: 3, days: 0 } } });
  isError(t, bad, 400, 'INVALID_PARAMS');
  t.match(bad.json['issues'], [
    { path: 'dir', message: String },
    { path: 'days', message: String },
  ]);
  const body = await request('POST', '/jobs/clean/run', { body: { params: { dir: '/x', days: 1 }, priority: 'high', extra: true } });
  isError(t, body, 400, 'INVALID_BODY');
  t.match(body.json['issues'], [{ path: 'body.priority' }, { path: 'body', message: /extra/ }]);
  isError(t, await request('POST', '/jobs/clean/run', { body: [1, 2] }), 400, 'INVALID_BODY');
  isError(t, await request('POST', '/jobs/nope/run', { body: {} }), 404, 'JOB_NOT_FOUND');
  isError(t, await request('POST', '/jobs/clean/run', { body: '{"params":' }), 400, 'BAD_REQUEST');
  isError(t, await request('POST', '/jobs/clean/run', { body: 'dir=/x', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  isError(t, await request('POST', '/jobs/clean/run', { body: '<a/>', headers: { 'content-type': 'application/xml' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
});

t.test('POST /jobs/:name/run: 409 SKIPPED with each reason', async (t) => {
  const { host, request } = await startServer(t);
  const release = gate();
  host.register({ name: 'solo', overlap: 'skip', handler: () => release.promise });
  host.register({ name: 'keyed', concurrency: 5, handler: () => release.promise });
  host.register({ name: 'first', once: true, handler: noop });
  host.register({ name: 'cool', cooldown: '5m', handler: noop });
  host.register({ name: 'off', enabled: false, handler: noop });
  const reason = async (job: string, body: unknown = {}): Promise<unknown> => {
    const res = await request('POST', `/jobs/${job}/run`, { body });
    isError(t, res, 409, 'SKIPPED');
    return res.json['reason'];
  };
  t.equal(await reason('off'), 'disabled');
  t.equal((await request('POST', '/jobs/solo/run')).status, 202);
  t.equal(await reason('solo'), 'overlap');
  t.equal((await request('POST', '/jobs/keyed/run', { body: { key: 'k' } })).status, 202);
  t.equal(await reason('keyed', { key: 'k' }), 'duplicate');
  await host.wait(runId(await request('POST', '/jobs/first/run')));
  t.equal(await reason('first'), 'once');
  await host.wait(runId(await request('POST', '/jobs/cool/run')));
  t.equal(await reason('cool'), 'cooldown');
  release.open();
});

t.test('POST /events/:type: 202 with the runs enqueued, skipped and failed', async (t) => {
  const { host, request } = await startServer(t);
  host.register(definePlugin({ name: 'ship', params: z.object({ orderId: z.string() }), on: ['order.placed'], handler: noop }));
  host.register({ name: 'audit', on: ['order.placed'], handler: noop });
  host.register({ name: 'muted', on: ['order.placed'], enabled: true, handler: noop });
  await host.disable('muted');
  const ok = await request('POST', '/events/order.placed', { body: { orderId: 'o-1' } });
  t.equal(ok.status, 202);
  t.equal((ok.json['enqueued'] as string[]).length, 2);
  const partial = await request('POST', '/events/order.placed', { body: { wrong: 1 } });
  t.match(partial.json, { enqueued: [String], errors: [{ job: 'ship', code: 'INVALID_PARAMS' }], skipped: [] });
  t.same((await request('POST', '/events/nobody.listens')).json, { enqueued: [], skipped: [], errors: [] });
  // No body (content-type and all) or a JSON null is no payload: the runs get the params a trigger without any gets.
  for (const body of [undefined, null]) {
    const bare = await request('POST', '/events/order.placed', { ...(body === null && { body: null }) });
    t.equal(bare.status, 202);
    t.match(bare.json, { enqueued: [String], errors: [{ job: 'ship', code: 'INVALID_PARAMS' }] }, 'audit runs; ship needs its orderId');
    t.same((await host.run((bare.json['enqueued'] as string[])[0]!))?.params, {});
  }
});

t.test('a params schema that throws refuses the trigger 400 INVALID_PARAMS (not a 500); params holding what a clone refuses still read', async (t) => {
  const { host, request } = await startServer(t);
  const boom = (): never => {
    throw new Error('refine blew up');
  };
  host.register(definePlugin({ name: 'sync-throw', params: z.object({ a: z.string() }).refine(boom), handler: noop }));
  // (An async refine that throws is one zod itself leaves unhandled: it runs it once synchronously first.)
  host.register(definePlugin({ name: 'transform-throw', params: z.object({ a: z.string() }).transform(boom), handler: noop }));
  for (const job of ['sync-throw', 'transform-throw']) {
    const res = await request('POST', `/jobs/${job}/run`, { body: { params: { a: 'x' } } });
    isError(t, res, 400, 'INVALID_PARAMS');
    t.match(res.json['message'], /the params schema threw: refine blew up/, job);
  }
  // An inline handler gets its params as the trigger made them (a function, a promise); the run
  // keeps them as JSON keeps them, and every read of the runs works while it is live.
  const release = gate();
  let seen: unknown;
  host.register({
    name: 'plain',
    handler: async (ctx: { params: unknown }) => {
      seen = ctx.params;
      await release.promise;
    },
  });
  const { runId } = await host.trigger('plain', { params: { n: 1, format: () => '#1', later: Promise.resolve(2), at: new Date(0) } });
  await until(() => seen !== undefined, 5000, 'the handler started');
  t.type((seen as { format: unknown }).format, 'function', 'inline: as given');
  const one = await request('GET', `/runs/${runId}`);
  t.equal(one.status, 200);
  t.same(one.json['params'], { n: 1, later: {}, at: '1970-01-01T00:00:00.000Z' }, 'as JSON keeps them');
  t.equal((await request('GET', '/runs')).status, 200, 'the list reads too');
  release.open();
  t.equal((await host.wait(runId)).status, 'succeeded');
});

t.test('runs: list with filters and cursor, one, cancel, retry', async (t) => {
  const { host, request } = await startServer(t);
  host.register({ name: 'a', handler: noop });
  host.register({
    name: 'bad',
    handler: () => {
      throw new Error('boom');
    },
  });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(runId(await request('POST', '/jobs/a/run')));
    await host.wait(ids.at(-1)!);
  }
  const failed = runId(await request('POST', '/jobs/bad/run'));
  await host.wait(failed);
  const first = await request('GET', '/runs?job=a&limit=2');
  const firstPage = page(runSchema).parse(first.json);
  t.same(
    firstPage.items.map((r) => r.id),
    [ids[4], ids[3]],
  );
  t.equal(firstPage.next, ids[3]);
  const second = page(runSchema).parse((await request('GET', `/runs?job=a&limit=2&before=${firstPage.next}`)).json);
  t.same(
    second.items.map((r) => r.id),
    [ids[2], ids[1]],
  );
  t.same(
    page(runSchema)
      .parse((await request('GET', '/runs?status=failed')).json)
      .items.map((r) => r.id),
    [failed],
  );
  isError(t, await request('GET', '/runs?status=lost'), 400, 'INVALID_BODY');
  isError(t, await request('GET', '/runs?limit=0'), 400, 'INVALID_BODY');
  isError(t, await request('GET', '/runs?color=red'), 400, 'INVALID_BODY');

  t.match(runSchema.parse((await request('GET', `/runs/${failed}`)).json), { id: failed, status: 'failed', error: { code: 'HANDLER_ERROR', message: 'boom' } });
  isError(t, await request('GET', '/runs/nope'), 404, 'RUN_NOT_FOUND');

  const retried = await request('POST', `/runs/${failed}/retry`);
  t.equal(retried.status, 202);
  t.match(await host.run(runId(retried)), { retryOf: failed, source: 'retry' });
  isError(t, await request('POST', `/runs/${ids[0]}/retry`), 409, 'RUN_NOT_RETRYABLE');
  isError(t, await request('POST', '/runs/nope/retry'), 404, 'RUN_NOT_FOUND');

  host.pause();
  const queued = runId(await request('POST', '/jobs/a/run'));
  const canceled = await request('POST', `/runs/${queued}/cancel`);
  t.equal(canceled.status, 200);
  t.match(runSchema.parse(canceled.json), { id: queued, status: 'canceled' });
  const again = await request('POST', `/runs/${queued}/cancel`);
  isError(t, again, 409, 'RUN_FINISHED');
  isError(t, await request('POST', '/runs/nope/cancel'), 404, 'RUN_NOT_FOUND');
});

t.test('stats and notifications', async (t) => {
  const { host, request } = await startServer(t);
  host.register({ name: 'n', notify: { title: 'Done', customTitle: true }, handler: () => ({ ok: true }) });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(runId(await request('POST', '/jobs/n/run')));
    await host.wait(ids.at(-1)!);
  }
  const stats = statsResponse.parse((await request('GET', '/stats')).json);
  t.match(stats, { state: 'running', totals: { runs: 3, succeeded: 3 }, perJob: { n: { count: 3 } } });
  const list = page(notificationSchema).parse((await request('GET', '/notifications?limit=2')).json);
  t.same(
    list.items.map((n) => n.runId),
    [ids[2], ids[1]],
  );
  t.match(list.items[0], { title: 'Done', status: 'succeeded' });
  t.ok(list.next);
  const rest = page(notificationSchema).parse((await request('GET', `/notifications?before=${list.next}`)).json);
  t.same(
    rest.items.map((n) => n.runId),
    [ids[0]],
  );
  t.equal(Array.isArray((await request('GET', '/notifications?job=other')).json['items']), true);
  isError(t, await request('GET', '/notifications?limit=-1'), 400, 'INVALID_BODY');
});

t.test('auth: with a token every route but /health needs it; compared as a whole', async (t) => {
  const token = 'secret-token-1234';
  const { host, request } = await startServer(t, { server: { token } });
  host.register({ name: 'job', handler: noop });
  t.equal((await request('GET', '/health')).status, 200);
  for (const [method, route] of [
    ['GET', '/jobs'],
    ['POST', '/jobs/job/run'],
    ['GET', '/metrics'],
    ['GET', '/openapi.json'],
    ['GET', '/nope'],
    ['GET', '/ready'],
  ]) {
    const res = await request(method!, route!);
    isError(t, res, 401, 'UNAUTHORIZED');
    t.equal(res.headers.get('www-authenticate'), 'Bearer');
  }
  isError(t, await request('GET', '/jobs', { headers: { authorization: 'Bearer wrong' } }), 401, 'UNAUTHORIZED');
  isError(t, await request('GET', '/jobs', { headers: { authorization: `Bearer ${token}x` } }), 401, 'UNAUTHORIZED');
  isError(t, await request('GET', '/jobs', { headers: { authorization: `Basic ${token}` } }), 401, 'UNAUTHORIZED');
  isError(t, await request('GET', `/jobs?token=${token}`), 401, 'UNAUTHORIZED');
  const auth = { authorization: `Bearer ${token}` };
  t.equal((await request('GET', '/jobs', { headers: auth })).status, 200);
  t.equal((await request('POST', '/jobs/job/run', { headers: auth })).status, 202);
  isError(t, await request('GET', '/nope', { headers: auth }), 404, 'NOT_FOUND');
});

t.test('refuses a non-loopback address without a token: INSECURE_BIND', async (t) => {
  const { host } = await startHost(t);
  t.throws(() => createServer(host, { host: '0.0.0.0', token: null }), { code: 'INSECURE_BIND', message: /0\.0\.0\.0.*token/ });
  t.throws(() => createServer(host, { host: '192.168.1.10' }), { code: 'INSECURE_BIND' });
  const withToken = createServer(host, { host: '0.0.0.0', token: 'long-enough-token' });
  await withToken.close();
  const local = createServer(host, { host: 'localhost', token: null });
  await local.close();
});

t.test("an embedder's server options pass the config file's schema: CONFIG_INVALID naming server.<key>, never a 500 later", async (t) => {
  const { host } = await startHost(t);
  for (const [options, path] of [
    [{ token: 123 }, 'server.token'],
    [{ token: '' }, 'server.token'],
    [{ port: 'abc' }, 'server.port'],
    [{ port: 70_000 }, 'server.port'],
    [{ bodyLimit: 'x' }, 'server.bodyLimit'],
    [{ host: '' }, 'server.host'],
  ] as const) {
    t.throws(
      () => createServer(host, options as never),
      { code: 'CONFIG_INVALID', message: new RegExp(`^${path.replace('.', '\\.')}`) },
      JSON.stringify(options),
    );
  }
  const ok = createServer(host, { host: '127.0.0.1', port: 0, token: 'long-enough-token', bodyLimit: 4096 });
  await ok.close();
  // Checked against the config's named tokens as the file's server.token is: one value is not two identities.
  const named = await startHost(t, { config: { server: { tokens: [{ name: 'ci', token: 'ci-token-0123456789abcdefgh', role: 'operator' }] } } });
  t.throws(() => createServer(named.host, { token: 'ci-token-0123456789abcdefgh' }), { code: 'CONFIG_INVALID', message: /same token/ });
});

t.test('bodies over the limit get 413', async (t) => {
  const { host, request } = await startServer(t, { server: { bodyLimit: 2048 } });
  host.register({ name: 'job', handler: noop });
  isError(t, await request('POST', '/jobs/job/run', { body: { params: { blob: 'x'.repeat(4096) } } }), 413, 'PAYLOAD_TOO_LARGE');
  t.equal((await request('POST', '/jobs/job/run', { body: { params: { blob: 'x'.repeat(100) } } })).status, 202);
});

t.test(
  "a full disk: the trigger fails with STORE_WRITE_FAILED, and the answer names no file of the server's",
  { skip: process.getuid?.() === 0 ? false : 'needs root to mount a small tmpfs (a real full disk)' },
  async (t) => {
    // A real full disk: a 2 MiB tmpfs holds the store; a filler takes the rest once the host has started.
    const dir = tempDir(t, 'jobhost-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]);
    let mounted = true;
    t.teardown(() => {
      if (mounted) execFileSync('umount', ['-l', dir]);
    });
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: 'error' },
      new Writable({
        write: (chunk: Buffer, _enc, done) => {
          lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
          done();
        },
      }),
    );
    const { host, request, server } = await startServer(t, { dir, logger, server: { logger } });
    host.register({ name: 'job', on: ['thing.happened'], handler: noop });
    const filler = path.join(dir, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(4 * 1024 * 1024));
    } catch (err) {
      t.equal((err as NodeJS.ErrnoException).code, 'ENOSPC', 'the filler took every byte left');
    }

    const res = await request('POST', '/jobs/job/run', { body: { params: { n: 1 } } });
    isError(t, res, ERROR_CODES.STORE_WRITE_FAILED.status, 'STORE_WRITE_FAILED');
    t.notMatch(res.text, dir, "the store's directory is not in the answer");
    t.notMatch(res.text, /journal|segments|\.ndjson|\/tmp\//, 'nor any file name or path');
    t.match(res.json['message'], /\(ENOSPC\)$/, 'what the client may know: the disk is full');
    t.same(
      Object.keys(res.json)
        .filter((k) => k !== 'retryAfter')
        .sort(),
      ['code', 'errno', 'error', 'message', 'statusCode'],
      'no details of the server in extra fields',
    );
    t.equal(res.json['errno'], 'ENOSPC');
    t.ok(Number(res.headers.get('retry-after')) >= 1, 'a temporary unavailability: Retry-After');
    const published = await request('POST', '/events/thing.happened', { body: { n: 2 } });
    isError(t, published, 503, 'STORE_WRITE_FAILED');
    t.notMatch(published.text, dir, 'nor in the answer to a published event');
    const logged = lines.find((l) => JSON.stringify(l).includes(dir));
    t.ok(logged, 'the log keeps the detail: which file could not be written');

    // Free the disk so the host drains, then stop everything before the tmpfs goes.
    rmSync(filler);
    await host.stop({ graceMs: 0 });
    await server.close();
    execFileSync('umount', [dir]);
    mounted = false;
  },
);

t.test('while the host stops: 503 SHUTTING_DOWN for new work, /health 200, /ready 503', async (t) => {
  const { host, request, of } = await startServer(t);
  const release = gate();
  host.register({ name: 'long', handler: () => release.promise });
  host.register({ name: 'other', on: ['x'], handler: noop });
  const running = runId(await request('POST', '/jobs/long/run'));
  const stopping = host.stop({ graceMs: 60_000 });
  t.equal(of('host.stopping').length, 1);
  isError(t, await request('POST', '/jobs/other/run'), 503, 'SHUTTING_DOWN');
  isError(t, await request('POST', '/events/x', { body: {} }), 503, 'SHUTTING_DOWN');
  t.equal((await request('GET', '/health')).status, 200);
  const ready = await request('GET', '/ready');
  t.equal(ready.status, 503);
  t.match(ready.json, { ready: false, status: 'stopping', state: 'stopping' });
  t.equal((await request('GET', `/runs/${running}`)).json['status'], 'running', 'reads still work while draining');
  release.open();
  await stopping;
  t.equal((await host.run(running))!.status, 'succeeded');
});

t.test('/ready: 503 while starting; stale scheduled jobs are listed', async (t) => {
  const { host, clock, request } = await startServer(t, { start: false });
  host.register({
    name: 'minutely',
    schedule: { every: '1m' },
    handler: () => {
      throw new Error('always fails');
    },
  });
  host.register({ name: 'fine', schedule: { every: '1m' }, handler: noop });
  const starting = await request('GET', '/ready');
  t.equal(starting.status, 503);
  t.match(starting.json, { ready: false, status: 'starting', state: 'created' });
  await host.start();
  t.match((await request('GET', '/ready')).json, { ready: true, scheduler: { running: true, scheduledJobs: 2 }, jobs: { total: 2, enabled: 2 }, stale: [] });
  await clock.advance(150_000);
  const later = await request('GET', '/ready');
  t.equal(later.status, 200, 'a stale job is reported, not a reason to take the host out of service');
  t.match(readyResponse.parse(later.json).stale, [{ job: 'minutely', schedule: 'every 1m', periodMs: 60_000, lastSuccessAt: null }]);
  t.equal(readyResponse.parse(later.json).stale.length, 1);
});

t.test('useServer: listens when the host starts, closes after it stops', async (t) => {
  const { host } = await startHost(t, { start: false });
  const server = useServer(host, { host: '127.0.0.1', port: 0 });
  t.equal(server.url, null);
  await host.start();
  const url = server.url!;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal((await fetch(`${url}/health`)).status, 200);
  await host.stop();
  t.equal(server.url, null);
  await t.rejects(fetch(`${url}/health`), 'the port is closed');
});

t.test('extra plugins add routes beside the API, behind the same auth and errors', async (t) => {
  const dashboard: ServerPlugin = async (app, { host }) => {
    // Every route declares the role it needs (SPEC §14): an embedder's own routes too.
    app.get('/', { config: { role: 'viewer' } }, async (_request, reply) => reply.type('text/html').send(`<h1>${host.jobs().length} jobs</h1>`));
    app.get('/broken', { config: { role: 'viewer' } }, async () => {
      throw new TypeError('a bug of ours');
    });
    app.get('/shell', { config: { public: true } }, async () => ({ shell: true }));
  };
  const token = 'dashboard-token';
  const { request } = await startServer(t, { server: { plugins: [dashboard], token } });
  isError(t, await request('GET', '/'), 401, 'UNAUTHORIZED');
  const page = await request('GET', '/', { headers: { authorization: `Bearer ${token}` } });
  t.equal(page.status, 200);
  t.equal(page.text, '<h1>0 jobs</h1>');
  const broken = await request('GET', '/broken', { headers: { authorization: `Bearer ${token}` } });
  isError(t, broken, 500, 'INTERNAL');
  t.notMatch(broken.text, /a bug of ours/, 'the details stay in the log');
  t.same((await request('GET', '/shell')).json, { shell: true }, 'a route marked public needs no token');
  isError(t, await request('GET', '/shell/x'), 401, 'UNAUTHORIZED');
});

t.test('GET /openapi.json documents every route, from the same zod schemas', async (t) => {
  const { server, request } = await startServer(t);
  const doc = (await request('GET', '/openapi.json')).json as {
    openapi: string;
    paths: Record<string, Record<string, { requestBody?: unknown; parameters?: Array<{ name: string }> }>>;
  };
  t.match(doc.openapi, /^3\./);
  const expected = [
    'get /health',
    'get /ready',
    'get /jobs',
    'get /jobs/{name}',
    'post /jobs/{name}/run',
    'post /jobs/{name}/enable',
    'post /jobs/{name}/disable',
    'post /events/{type}',
    'get /runs',
    'get /runs/{id}',
    'post /runs/{id}/cancel',
    'post /runs/{id}/retry',
    'get /stats',
    'get /notifications',
    'get /metrics',
    'get /events',
    'get /openapi.json',
    'get /store/damage',
    'post /store/damage/ack',
  ];
  const listed = Object.entries(doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m} ${p}`));
  for (const route of expected) t.ok(listed.includes(route), route);
  for (const route of expected) {
    const [method, url] = route.split(' ') as [string, string];
    t.ok(server.app.hasRoute({ method: method.toUpperCase() as 'GET', url: url.replace(/\{(\w+)\}/g, ':$1') }), `${route} is served`);
  }
  t.ok(doc.paths['/jobs/{name}/run']!['post']!.requestBody, 'the trigger body is documented');
  for (const route of ['/jobs/{name}/run', '/jobs/{name}/enable', '/store/damage/ack']) {
    t.match(doc.paths[route]!['post']!.requestBody, { required: false }, `${route}: a body that may be left out is documented optional`);
  }
  t.same(doc.paths['/runs']!['get']!.parameters!.map((p) => p.name).sort(), ['before', 'job', 'limit', 'status']);
  t.same(doc.paths['/events']!['get']!.parameters!.map((p) => p.name).sort(), ['boot', 'job', 'logs', 'run', 'since', 'token', 'type']);
  // What the server's guards answer to any route is documented on each: 403 everywhere (a foreign
  // origin), 401 where a token's role is checked, 400 where the query or body is, 413/415 on every
  // POST (a body too large, not JSON).
  const ops = doc.paths as unknown as Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
  const anyQuery = ['/health', '/ready', '/metrics', '/events/{type}', '/openapi.json'];
  for (const [p, methods] of Object.entries(ops)) {
    for (const [m, op] of Object.entries(methods)) {
      t.ok(op.responses['403'], `${m} ${p} documents 403`);
      if (p === '/health') continue;
      t.ok(op.responses['401'], `${m} ${p} documents 401`);
      if (m === 'post' || !anyQuery.includes(p)) t.ok(op.responses['400'], `${m} ${p} documents 400`);
      if (m === 'post') for (const code of ['413', '415']) t.ok(op.responses[code], `${m} ${p} documents ${code}`);
    }
  }
  t.same(Object.keys(ops['/metrics']!['get']!.responses['200']!.content!), ['text/plain'], '/metrics is documented as text');
  t.same(Object.keys(ops['/jobs']!['get']!.responses['200']!.content!), ['application/json']);
});

t.test('a notification as served has only the fields /openapi.json documents for it', async (t) => {
  const { host, request } = await startServer(t, { config: { notifications: { throttle: 0 } } });
  host.register({ name: 'fails', notify: { on: ['failed'] }, handler: () => Promise.reject(new Error('no')) });
  await host.wait((await host.trigger('fails')).runId);
  const doc = (await request('GET', '/openapi.json')).json as {
    paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: { properties: Record<string, unknown> } }> }> }>>;
  };
  const item = doc.paths['/notifications/{id}']!['get']!.responses['200']!.content['application/json']!.schema;
  const served = (await request('GET', '/notifications')).json['items'] as Array<Record<string, unknown>>;
  t.equal(served.length, 1);
  for (const key of Object.keys(served[0]!)) t.ok(key in item.properties, `${key} is documented`);
  for (const key of ['rule', 'throttled', 'held', 'host', 'condition']) t.ok(key in item.properties, `${key} is documented`);
});

t.test('GET /cluster on the local backend: this host alone, its jobs with their versions, no drift', async (t) => {
  const s = await startServer(t);
  s.host.register({ name: 'a', handler: () => 1 });
  s.host.register({ name: 'b', schedule: '0 * * * *', handler: () => 2 });
  const res = await s.request('GET', '/cluster');
  t.equal(res.status, 200);
  t.match(res.json, { backend: 'local', self: s.host.id, drift: [] });
  const hosts = res.json['hosts'] as Array<{ id: string; running: number; jobs: Array<{ name: string; version: string }> }>;
  t.equal(hosts.length, 1, 'one host');
  t.match(hosts[0], { id: s.host.id, running: 0, startedAt: String, lastSeen: String });
  t.same(
    hosts[0]!.jobs.map((j) => j.name),
    ['a', 'b'],
  );
  t.ok(
    hosts[0]!.jobs.every((j) => /^[0-9a-f]{12}$/.test(j.version)),
    'each job has a version',
  );
  const before = hosts[0]!.jobs[1]!.version;
  s.host.register({ name: 'b', schedule: '30 * * * *', handler: () => 2 });
  const after = ((await s.request('GET', '/cluster')).json['hosts'] as typeof hosts)[0]!.jobs[1]!.version;
  t.not(after, before, 'an edited schedule is another version');
});

t.test('every route refuses unknown query and body keys; no body, an empty JSON body or null is no body', async (t) => {
  const { host, request } = await startServer(t);
  host.register({ name: 'job', handler: noop });
  const doc = (await request('GET', '/openapi.json')).json as { paths: Record<string, Record<string, unknown>> };
  const routes = Object.entries(doc.paths).flatMap(([p, methods]) =>
    Object.keys(methods).map((m) => ({ method: m.toUpperCase(), url: p.replace(/\{\w+\}/g, 'x') })),
  );
  t.ok(routes.length > 30, `${routes.length} routes`);
  for (const { method, url } of routes) {
    if (url === '/openapi.json') continue; // served by the documentation plugin, not the API
    if (url === '/events' && method === 'GET') continue; // the WebSocket: its own query schema, tested in ws.test.ts
    if (['/health', '/ready', '/metrics', '/events/x'].includes(url)) {
      // Probes, scrapers and app events from other systems: a query of their own is no error.
      t.ok((await request(method as 'GET', `${url}?zzz=1`)).status < 400, `${method} ${url}?zzz=1 is served`);
    } else isError(t, await request(method as 'GET', `${url}?zzz=1`), 400, 'INVALID_BODY');
    if (method !== 'POST' || url.startsWith('/events/')) continue; // an app event's body is its payload: any JSON
    for (const body of [{ zzz: 1 }, [], '"x"', 5]) {
      const res = await request('POST', url, { body });
      t.equal(res.status, 400, `POST ${url} ${String(body)}: 400`);
      t.equal(res.json['code'], 'INVALID_BODY', `POST ${url} ${String(body)}: INVALID_BODY`);
    }
  }
  // No body at all (content-type JSON, as the README's curl sends), and `null`: what the route does without one.
  for (const body of [undefined, null]) {
    t.equal((await request('POST', '/store/damage/ack', { body })).status, 200, `ack with ${String(body)} body`);
    t.equal((await request('POST', '/jobs/job/disable', { body })).status, 200, `disable with ${String(body)} body`);
  }
});

t.test('a port another process has: LISTEN_FAILED naming the address and the settings to change, not a bare EADDRINUSE', async (t) => {
  const s = await startServer(t);
  const port = Number(new URL(s.url).port);
  const { host } = await startHost(t);
  const second = createServer(host, { host: '127.0.0.1', port });
  t.teardown(() => second.close());
  await t.rejects(second.listen(), {
    code: 'LISTEN_FAILED',
    message: new RegExp(`^cannot listen on 127\\.0\\.0\\.1:${port}: another process has that port \\(EADDRINUSE; set server\\.port or JOBHOST_PORT`),
    details: { port, errno: 'EADDRINUSE' },
  });
});

t.test('a query number is decimal digits, given once: hex, exponents, empty or repeated values are refused, saying which', async (t) => {
  const { request } = await startServer(t);
  for (const [query, message] of [
    ['limit=1&limit=2', 'querystring.limit: given more than once'],
    ['limit=0x10', 'querystring.limit: expected a whole number in decimal digits'],
    ['limit=1e2', 'querystring.limit: expected a whole number in decimal digits'],
    ['limit=', 'querystring.limit: expected a whole number in decimal digits'],
  ] as const) {
    t.match(await request('GET', `/runs?${query}`), { status: 400, json: { code: 'INVALID_BODY', message, issues: [{ path: 'querystring.limit' }] } }, query);
  }
  t.equal((await request('GET', '/runs?limit=16')).status, 200);
  t.equal((await request('GET', '/audit?limit=1e2')).status, 400, 'the audit log too');
});
