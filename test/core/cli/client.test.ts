import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import t, { type Test } from 'tap';
import { createClient, errorFromBody, normalizeUrl, unreachable } from '../../../core/cli/client.js';
import { closedPort, QUICK_SCHEDULE, rejects, startLiveHost } from '../../live-host.js';

const TOKEN = 'client-test-token';

/** A plain HTTP server answering every request with `handler`. */
async function fakeServer(t: Test, handler: Parameters<typeof createHttpServer>[1]): Promise<{ url: string; server: HttpServer }> {
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

t.test('reads jobs and runs, triggers, and checks each answer', async (t) => {
  const live = await startLiveHost(t);
  const client = createClient({ url: `${live.url}/` });
  t.equal(client.url, live.url, 'trailing slash dropped');
  t.match(await client.health(), { status: 'ok', state: 'running' });

  const jobs = await client.jobs();
  t.same(jobs.map((j) => j.name).sort(), ['quick', 'work']);
  const quick = jobs.find((j) => j.name === 'quick')!;
  t.match(quick, { schedule: QUICK_SCHEDULE, enabled: true, lastRun: null, counts: { succeeded: 0, failed: 0 } });
  t.type(quick.nextRun, 'string');
  t.ok('paramsSchema' in jobs.find((j) => j.name === 'work')!, 'fields the client does not know pass through');

  const runId = await client.trigger('work', { params: { steps: 1 }, priority: 1, key: 'k' });
  await live.host.wait(runId);
  const run = await client.run(runId);
  t.match(run, { id: runId, job: 'work', status: 'succeeded', result: { steps: 1 }, error: null, progress: { fraction: 1 } });

  const delayed = await client.trigger('quick', { delay: '1h' });
  t.match(await client.run(delayed), { status: 'queued' });
  await live.host.cancel(delayed);
});

t.test('API errors keep the host code, message, issues and reason', async (t) => {
  const live = await startLiveHost(t);
  const client = createClient({ url: live.url });
  await rejects(t, client.trigger('nope'), 'JOB_NOT_FOUND', /no job named "nope"/);
  await rejects(t, client.run('nope'), 'RUN_NOT_FOUND');
  const invalid = await rejects(t, client.trigger('work', { params: { steps: 0, hold: 'x' } }), 'INVALID_PARAMS');
  t.equal(invalid.status, 400);
  t.same(invalid.issues.map((i) => i.path).sort(), ['hold', 'steps']);
  await client.trigger('work', { params: { hold: true }, key: 'once' });
  const skipped = await rejects(t, client.trigger('work', { key: 'once' }), 'SKIPPED');
  t.equal(skipped.reason, 'duplicate');
  live.release();
});

t.test('a token is sent as a bearer header; without it the host says UNAUTHORIZED', async (t) => {
  const live = await startLiveHost(t, { token: TOKEN });
  t.equal((await createClient({ url: live.url, token: TOKEN }).jobs()).length, 2);
  const err = await rejects(t, createClient({ url: live.url }).jobs(), 'UNAUTHORIZED');
  t.equal(err.status, 401);
  await rejects(t, createClient({ url: live.url, token: 'wrong-token-123' }).jobs(), 'UNAUTHORIZED', /not valid/);
});

t.test('no host, a stalled host, a host that is not jobhost, a bad URL', async (t) => {
  const port = await closedPort();
  await rejects(
    t,
    createClient({ url: `http://127.0.0.1:${port}` }).jobs(),
    'UNREACHABLE',
    new RegExp(`no jobhost at http://127.0.0.1:${port} \\(connection refused\\)`),
  );
  await rejects(t, createClient({ url: 'http://host.invalid' }).jobs(), 'UNREACHABLE', /cannot reach jobhost at http:\/\/host\.invalid: E/);

  const stalled = await fakeServer(t, () => undefined);
  await rejects(t, createClient({ url: stalled.url, timeoutMs: 100 }).jobs(), 'REQUEST_TIMEOUT', /within 100 ms \(GET \/jobs\)/);

  const html = await fakeServer(t, (req, res) => {
    if (req.url === '/jobs') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hi</html>');
    else if (req.url === '/health') res.writeHead(200).end('{"status":"ok"}');
    else res.writeHead(502).end('Bad Gateway');
  });
  const client = createClient({ url: html.url });
  await rejects(t, client.jobs(), 'BAD_RESPONSE', /not JSON: <html>hi<\/html>/);
  await rejects(t, client.health(), 'BAD_RESPONSE', /unexpected answer: .*state/s);
  const gateway = await rejects(t, client.run('x'), 'BAD_RESPONSE', /HTTP 502: Bad Gateway/);
  t.equal(gateway.status, 502);

  t.equal(normalizeUrl('localhost:3000'), 'http://localhost:3000', 'http:// is assumed');
  t.equal(normalizeUrl('https://jobs.example/api/'), 'https://jobs.example/api', 'a path prefix is kept');
  t.throws(() => normalizeUrl('http://'), { code: 'BAD_URL' });
  t.throws(() => createClient({ url: 'ftp://x' }), { code: 'BAD_URL' });
  t.match(errorFromBody(500, ''), { code: 'BAD_RESPONSE', message: 'HTTP 500: (empty body)' });
  t.match(unreachable('http://x', 'weird'), { code: 'UNREACHABLE', message: 'cannot reach jobhost at http://x: weird' });
  // localhost may try ::1 and 127.0.0.1: both refusals come together
  const both = Object.assign(new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' })]), {});
  t.match(unreachable('http://x', new TypeError('fetch failed', { cause: both })).message, /no jobhost at http:\/\/x/);
});

t.test("notify test waits for the host's answer past the client's timeout (the host bounds it by notifications.timeout), unless told a bound", async (t) => {
  const answer = { name: 'slow-hook', kind: 'webhook', target: 'http://127.0.0.1:9/…', ok: true, status: 200, body: 'ok', error: null, durationMs: 300 };
  const { url } = await fakeServer(t, (req, res) => {
    t.equal(req.url, '/notifications/destinations/slow-hook/test');
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)), 300);
  });
  const client = createClient({ url, timeoutMs: 100 });
  t.match(await client.testDestination('slow-hook'), { ok: true, status: 200 }, 'answered after 300 ms, past the 100 ms the other requests get');
  await t.rejects(client.testDestination('slow-hook', 50), { code: 'REQUEST_TIMEOUT', message: /within 50 ms/ });
});
