import http from 'node:http';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { ERROR_CODES, type ErrorCode } from '../../../core/contract/errors.js';
import { isJsonContentType, requestGuard } from '../../../core/server/origin.js';
import { captureLogger, startServer, type TestServer } from '../../helpers.js';

/**
 * SPEC §7: a token-less host is not open to the web pages its user visits. Raw HTTP requests and
 * WebSocket upgrades carry the headers a browser would send for a hostile page (a foreign Origin,
 * a rebound Host name); the host refuses them before any work, and admits what the allow-lists list.
 */

const FOREIGN = 'http://evil.example.com';

interface RawResponse {
  status: number;
  json: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
}

/** A request through node:http, which (unlike fetch) lets the test choose the Host header. */
function raw(s: TestServer, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<RawResponse> {
  const { port } = new URL(s.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON: the status says enough
        }
        resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function refused(t: Test, res: RawResponse, code: ErrorCode, what: string): void {
  t.equal(res.status, ERROR_CODES[code].status, `${what}: status`);
  t.match(res.json, { statusCode: ERROR_CODES[code].status, code, error: String, message: String }, `${what}: ${code}`);
}

/** The outcome of a WebSocket upgrade: the hello (accepted), or the status and code of the refusal. */
function upgrade(
  s: TestServer,
  options: { query?: string; headers?: Record<string, string>; origin?: string } = {},
): Promise<{ hello: unknown } | { status: number; code: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${s.url.replace('http', 'ws')}/events${options.query ?? ''}`, {
      headers: options.headers ?? {},
      ...(options.origin !== undefined && { origin: options.origin }),
    });
    socket.on('message', (data) => {
      resolve({ hello: JSON.parse(String(data)) as unknown });
      socket.terminate();
    });
    socket.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text) as { code?: unknown }).code });
        socket.terminate();
      });
    });
    socket.on('error', (err) => reject(err));
  });
}

t.test('the guard: loopback names and listed hosts; own, listed and absent origins', async (t) => {
  const guard = requestGuard({
    bindHost: '127.0.0.1',
    allowedOrigins: ['https://jobs.example.com'],
    allowedHosts: ['jobs.example.com', 'proxy.internal:8443'],
  });
  const ok = (headers: { host?: string; origin?: string }, what: string): void => {
    t.doesNotThrow(() => guard(headers), what);
  };
  const no = (headers: { host?: string; origin?: string }, code: ErrorCode, what: string): void => {
    t.throws(() => guard(headers), { code }, what);
  };
  for (const host of ['127.0.0.1', '127.0.0.1:3000', 'localhost', 'LOCALHOST:3000', '[::1]', '[::1]:3000', '127.0.0.2:3000']) ok({ host }, host);
  ok({ host: 'jobs.example.com:1234' }, 'a listed name, any port');
  ok({ host: 'proxy.internal:8443' }, 'a listed name:port');
  ok({}, 'no Host (HTTP/1.0): no browser, no rebinding');
  for (const host of [
    'evil.example.com',
    'evil.example.com:3000',
    'proxy.internal',
    'proxy.internal:8444',
    'localhost.evil.example.com',
    '127.0.0.1.nip.io:3000',
    '',
    'a b',
    'x/y',
  ]) {
    no({ host }, 'HOST_NOT_ALLOWED', `Host ${JSON.stringify(host)}`);
  }

  ok({ host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' }, 'the own origin, by address');
  ok({ host: 'localhost:3000', origin: 'http://localhost:3000' }, 'the own origin, by name');
  ok({ host: '127.0.0.1:80', origin: 'http://127.0.0.1' }, 'a default port is left out of an origin');
  ok({ host: 'jobs.example.com:1234', origin: 'http://jobs.example.com:1234' }, 'the own origin under a listed name');
  ok({ host: '127.0.0.1:3000', origin: 'https://jobs.example.com' }, 'a listed origin (a proxy that rewrites Host)');
  ok({ host: '127.0.0.1:3000' }, 'no Origin: curl, the CLI, servers');
  for (const origin of [
    FOREIGN,
    'http://127.0.0.1:3001',
    'http://localhost:3000',
    'https://127.0.0.1:3000',
    'https://jobs.example.com:8443',
    'http://jobs.example.com',
    'null',
    '',
    'http://127.0.0.1:3000/',
  ]) {
    no({ host: '127.0.0.1:3000', origin }, 'ORIGIN_NOT_ALLOWED', `Origin ${JSON.stringify(origin)}`);
  }
  t.throws(
    () => guard({ host: '127.0.0.1:3000', origin: 'x'.repeat(10_000) }),
    { message: /^Origin "x{100}…" is not allowed/ },
    'a huge header is not echoed whole',
  );

  const open = requestGuard({ bindHost: '0.0.0.0', allowedOrigins: [], allowedHosts: [] });
  t.doesNotThrow(() => open({ host: 'jobs.example.com' }), 'off loopback (a token is required there) any Host is served');
  t.doesNotThrow(() => open({ host: 'jobs.example.com', origin: 'http://jobs.example.com' }), '...and its own origin follows it');
  t.throws(() => open({ host: 'jobs.example.com', origin: FOREIGN }), { code: 'ORIGIN_NOT_ALLOWED' }, '...but a foreign Origin is still refused');
});

t.test('application/json, with or without parameters, and nothing else', async (t) => {
  for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', ' application/json ;x=y']) t.ok(isJsonContentType(type), type);
  for (const type of [
    undefined,
    '',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/jsonx',
    'application/merge-patch+json',
    'text/json',
  ]) {
    t.notOk(isJsonContentType(type), String(type));
  }
});

t.test('a foreign Origin is refused 403 on every route before any work; no Origin and the own one are served', async (t) => {
  const s = await startServer(t);
  s.host.register({ name: 'job', on: ['thing.happened'], handler: () => undefined });
  const { port } = new URL(s.url);
  const json = { 'content-type': 'application/json' };
  const attempts: Array<[string, string, Record<string, string>, string?]> = [
    ['POST', '/jobs/job/run', {}],
    ['POST', '/jobs/job/run', json, '{}'],
    ['POST', '/events/thing.happened', json, '{}'],
    ['POST', '/jobs/job/disable', json],
    ['GET', '/jobs', {}],
    ['GET', '/runs', {}],
    ['GET', '/health', {}],
    ['GET', '/metrics', {}],
    ['GET', '/nope', {}],
    ['OPTIONS', '/jobs/job/run', { 'access-control-request-method': 'POST' }],
  ];
  for (const [method, path, headers, body] of attempts) {
    for (const origin of [FOREIGN, 'null', `http://127.0.0.1:${Number(port) + 1}`]) {
      refused(t, await raw(s, method, path, { ...headers, origin }, body), 'ORIGIN_NOT_ALLOWED', `${method} ${path} from ${origin}`);
    }
  }
  t.same(
    s.events.filter((e) => e.type.startsWith('run.')),
    [],
    'no run was queued, not even refused',
  );
  t.equal(s.host.job('job')!.enabled, true, 'the job was not disabled');

  t.equal((await raw(s, 'POST', '/jobs/job/run', { ...json, origin: `http://127.0.0.1:${port}` })).status, 202, 'the own origin');
  t.equal(
    (await raw(s, 'POST', '/jobs/job/run', { ...json, origin: `http://localhost:${port}`, host: `localhost:${port}` })).status,
    202,
    'the own origin by name',
  );
  t.equal((await raw(s, 'POST', '/jobs/job/run', json)).status, 202, 'no Origin (the CLI, curl)');
  const served = await raw(s, 'GET', '/jobs', { origin: `http://127.0.0.1:${port}` });
  t.equal(served.status, 200);
  t.equal(served.headers['cross-origin-resource-policy'], 'same-origin', 'answers are not for other sites to embed');
  t.equal(served.headers['x-content-type-options'], 'nosniff');
});

t.test('a Host that names neither loopback nor a listed name is refused (DNS rebinding)', async (t) => {
  const s = await startServer(t);
  s.host.register({ name: 'job', handler: () => undefined });
  const { port } = new URL(s.url);
  for (const host of ['evil.example.com', `evil.example.com:${port}`, `127.0.0.1.evil.example.com:${port}`]) {
    refused(t, await raw(s, 'GET', '/jobs', { host }), 'HOST_NOT_ALLOWED', `GET /jobs as ${host}`);
    refused(t, await raw(s, 'GET', '/health', { host }), 'HOST_NOT_ALLOWED', `GET /health as ${host}`);
    // What a rebound page sends: its own origin, the hostile name, same-origin in the browser's eyes.
    refused(
      t,
      await raw(s, 'POST', '/jobs/job/run', { host, origin: `http://${host}`, 'content-type': 'application/json' }, '{}'),
      'HOST_NOT_ALLOWED',
      `POST as ${host}`,
    );
  }
  t.same(
    s.events.filter((e) => e.type.startsWith('run.')),
    [],
    'no run',
  );
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, '127.0.0.1', 'localhost']) {
    t.equal((await raw(s, 'GET', '/jobs', { host })).status, 200, `Host ${host}`);
  }
});

t.test('with a token: the token does not excuse a foreign Origin or Host', async (t) => {
  const token = 'origin-test-token';
  const s = await startServer(t, { server: { token } });
  s.host.register({ name: 'job', handler: () => undefined });
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  refused(t, await raw(s, 'POST', '/jobs/job/run', { ...auth, origin: FOREIGN }, '{}'), 'ORIGIN_NOT_ALLOWED', 'a foreign origin with the token');
  refused(t, await raw(s, 'GET', '/jobs', { ...auth, host: 'evil.example.com' }), 'HOST_NOT_ALLOWED', 'a foreign host with the token');
  refused(t, await raw(s, 'GET', '/jobs', { origin: FOREIGN }), 'ORIGIN_NOT_ALLOWED', 'a foreign origin without the token: 403, not 401');
  refused(t, await raw(s, 'GET', '/jobs', { origin: s.url }), 'UNAUTHORIZED', 'the own origin still needs the token');
  t.equal((await raw(s, 'POST', '/jobs/job/run', { ...auth, origin: s.url }, '{}')).status, 202);
  t.match(await upgrade(s, { origin: FOREIGN, query: `?token=${token}` }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' });
  t.match(await upgrade(s, { origin: s.url, query: `?token=${token}` }), { hello: { type: 'hello' } });
  t.equal(s.events.filter((e) => e.type === 'run.queued').length, 1, 'only the request from the own origin ran');
});

t.test('the allow-lists admit what they list, from the config or the server options', async (t) => {
  const config = { server: { allowedOrigins: ['https://jobs.example.com'], allowedHosts: ['jobs.example.com', 'proxy.internal:8443'] } };
  const fromConfig = await startServer(t, { config });
  const fromOptions = await startServer(t, {
    server: { allowedOrigins: ['https://jobs.example.com'], allowedHosts: ['Jobs.Example.com', 'proxy.internal:8443'] },
  });
  for (const [what, s] of [
    ['config', fromConfig],
    ['options', fromOptions],
  ] as const) {
    s.host.register({ name: 'job', handler: () => undefined });
    const json = { 'content-type': 'application/json' };
    t.equal(
      (await raw(s, 'POST', '/jobs/job/run', { ...json, origin: 'https://jobs.example.com' }, '{}')).status,
      202,
      `${what}: a listed origin behind a proxy that rewrites Host`,
    );
    t.equal(
      (await raw(s, 'POST', '/jobs/job/run', { ...json, host: 'jobs.example.com', origin: 'https://jobs.example.com' }, '{}')).status,
      202,
      `${what}: a proxy that keeps Host`,
    );
    t.equal(
      (await raw(s, 'GET', '/jobs', { host: 'jobs.example.com:8080', origin: 'http://jobs.example.com:8080' })).status,
      200,
      `${what}: a listed name is served on any port, with its own origin`,
    );
    t.equal((await raw(s, 'GET', '/jobs', { host: 'proxy.internal:8443' })).status, 200, `${what}: a listed name:port`);
    refused(t, await raw(s, 'GET', '/jobs', { host: 'proxy.internal:8444' }), 'HOST_NOT_ALLOWED', `${what}: another port of a name:port`);
    refused(t, await raw(s, 'GET', '/jobs', { origin: 'https://jobs.example.com:8443' }), 'ORIGIN_NOT_ALLOWED', `${what}: another port of a listed origin`);
    refused(t, await raw(s, 'GET', '/jobs', { origin: 'http://jobs.example.com' }), 'ORIGIN_NOT_ALLOWED', `${what}: another scheme of a listed origin`);
    refused(t, await raw(s, 'GET', '/jobs', { origin: FOREIGN }), 'ORIGIN_NOT_ALLOWED', `${what}: an unlisted origin`);
    t.match(await upgrade(s, { origin: 'https://jobs.example.com' }), { hello: { type: 'hello' } }, `${what}: the WebSocket from a listed origin`);
    t.equal(s.events.filter((e) => e.type === 'run.queued').length, 2);
  }
  await t.rejects(
    startServer(t, { server: { allowedOrigins: ['jobs.example.com'] } }),
    { code: 'CONFIG_INVALID', message: /^server\.allowedOrigins\.0: / },
    "an embedder gets the config file's errors",
  );
});

t.test('the WebSocket upgrade is refused before the socket is accepted: no hello, no event', async (t) => {
  const s = await startServer(t);
  s.host.register({ name: 'job', handler: () => undefined });
  const { port } = new URL(s.url);
  t.match(await upgrade(s, { origin: FOREIGN }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' });
  t.match(await upgrade(s, { origin: 'null' }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' });
  t.match(await upgrade(s, { origin: `http://127.0.0.1:${Number(port) + 1}` }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' });
  t.match(await upgrade(s, { headers: { host: `evil.example.com:${port}` }, origin: `http://evil.example.com:${port}` }), {
    status: 403,
    code: 'HOST_NOT_ALLOWED',
  });
  t.match(await upgrade(s, { origin: FOREIGN, query: '?since=0&type=run.*' }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' }, 'a replay is refused too');
  t.match(await s.metrics(), /jobhost_ws_clients 0/, 'no socket was ever opened');
  t.match(await upgrade(s, { origin: s.url }), { hello: { type: 'hello' } }, 'the own origin');
  t.match(
    await upgrade(s, { origin: `http://localhost:${port}`, headers: { host: `localhost:${port}` } }),
    { hello: { type: 'hello' } },
    'the own origin by name',
  );
  t.match(await upgrade(s), { hello: { type: 'hello' } }, 'no Origin (the CLI)');
});

t.test('POST routes take application/json only, body or no body', async (t) => {
  const s = await startServer(t);
  s.host.pause();
  s.host.register({ name: 'job', on: ['thing.happened'], handler: () => undefined });
  const queued = (await s.host.trigger('job')).runId;
  const simple: Array<[string, Record<string, string>, string?]> = [
    ['no content type, no body', {}],
    ['a form', { 'content-type': 'application/x-www-form-urlencoded' }, 'params=1'],
    ['an empty form', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['text/plain', { 'content-type': 'text/plain' }, '{}'],
    ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'],
  ];
  for (const path of ['/jobs/job/run', '/events/thing.happened', '/jobs/job/disable', `/runs/${queued}/cancel`]) {
    for (const [what, headers, body] of simple) refused(t, await raw(s, 'POST', path, headers, body), 'UNSUPPORTED_MEDIA_TYPE', `${path}: ${what}`);
  }
  t.equal(s.events.filter((e) => e.type === 'run.queued').length, 1, 'only the run queued in-process');
  t.equal((await s.host.run(queued))!.status, 'queued', 'nothing canceled it');
  t.equal(s.host.job('job')!.enabled, true, 'nothing disabled the job');

  const json = { 'content-type': 'application/json' };
  t.equal((await raw(s, 'POST', '/jobs/job/run', json)).status, 202, 'JSON with no body');
  t.equal((await raw(s, 'POST', '/jobs/job/run', { 'content-type': 'application/json; charset=utf-8' }, '{"params":{}}')).status, 202, 'JSON with a charset');
  t.equal((await raw(s, 'POST', '/events/thing.happened', json)).status, 202);
  t.match((await raw(s, 'POST', '/jobs/job/disable', json)).json, { name: 'job', enabled: false });
  t.match((await raw(s, 'POST', `/runs/${queued}/cancel`, json)).json, { id: queued, status: 'canceled' });
  refused(t, await raw(s, 'POST', '/jobs/job/run', json, '{"params":'), 'BAD_REQUEST', 'malformed JSON is still 400');
  refused(t, await raw(s, 'POST', '/nope', {}), 'NOT_FOUND', 'an unknown path is still 404');
});

t.test("a refused foreign request's ?token= never reaches the log", async (t) => {
  const token = 'origin-log-token-0123456789';
  const log = captureLogger();
  const s = await startServer(t, { server: { token }, logger: log.logger });
  t.match(await upgrade(s, { origin: FOREIGN, query: `?token=${token}` }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' });
  refused(t, await raw(s, 'GET', `/jobs?token=${token}`, { host: 'evil.example.com' }), 'HOST_NOT_ALLOWED', 'a foreign Host');
  const warned = log.lines.filter((l) => l['msg'] === 'refused a request from a foreign web page (server.allowedOrigins / server.allowedHosts admit one)');
  t.equal(warned.length, 2, 'both refusals logged');
  t.match(warned[0], { code: 'ORIGIN_NOT_ALLOWED', url: '/events?token=[redacted]' });
  t.notOk(
    log.lines.some((l) => JSON.stringify(l).includes(token)),
    'the token is in no log line',
  );
});

t.test("with requestLogging, fastify's request lines show a ?token= redacted", async (t) => {
  const token = 'request-log-token-0123456789';
  const log = captureLogger();
  const s = await startServer(t, { server: { token, requestLogging: true }, logger: log.logger });
  await raw(s, 'GET', `/events?token=${token}`, {});
  await raw(s, 'GET', `/jobs?a=1&token=${token}`, {});
  await raw(s, 'GET', `/events?%74oken=${token}`, {});
  const incoming = log.lines.filter((l) => typeof (l['req'] as { url?: unknown } | undefined)?.url === 'string');
  t.match(
    incoming.map((l) => (l['req'] as { url: string }).url),
    ['/events?token=[redacted]', '/jobs?a=1&token=[redacted]', '/events?%74oken=[redacted]'],
    'the request lines are there, each URL redacted',
  );
  t.notOk(
    log.lines.some((l) => JSON.stringify(l).includes(token)),
    'the token is in no log line',
  );
});
