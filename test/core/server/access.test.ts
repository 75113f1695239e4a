import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { WebSocket } from 'ws';
import { ROLES, type Role, roleAllows, type WhoAmI } from '../../../core/contract/access.js';
import { parseConfig } from '../../../core/contract/config.js';
import { ConfigWatcher, readConfigFile } from '../../../core/loader/config-file.js';
import { ROUTE_ACCESS, routeAccess } from '../../../core/server/route-roles.js';
import { createServer, type ServerPlugin } from '../../../core/server/server.js';
import { captureLogger, nextEvent, startServer, type Tap, type TestServer, tempDir, until } from '../../helpers.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789abcdef',
  operator: 'operator-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef-admin',
  deployer: 'deployer-token-0123456789abcdef',
};

const tokensConfig: Array<{ name: string; token: string; role: Role; jobs?: string[] }> = [
  { name: 'dash', token: TOKENS.viewer, role: 'viewer' },
  { name: 'ops', token: TOKENS.operator, role: 'operator' },
  { name: 'root', token: TOKENS.admin, role: 'admin' },
  { name: 'ci', token: TOKENS.deployer, role: 'operator', jobs: ['deploy-*'] },
];

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function teamServer(t: Tap, extra: Record<string, unknown> = {}): Promise<TestServer> {
  const s = await startServer(t, { config: { server: { tokens: tokensConfig }, ...extra } });
  s.host.register({ name: 'deploy-web', on: ['ping'], handler: () => 'ok' });
  s.host.register({ name: 'cleanup', on: ['ping'], handler: () => 'ok' });
  return s;
}

t.test('the role x route matrix: every route of the OpenAPI document, with every role', async (t) => {
  const s = await teamServer(t);
  // A run of a job the limited operator may touch, and one of a job it may not.
  const allowedRun = (await s.host.trigger('deploy-web')).runId;
  const otherRun = (await s.host.trigger('cleanup')).runId;
  await s.host.wait(allowedRun);
  await s.host.wait(otherRun);

  const doc = (await s.request('GET', '/openapi.json', { headers: bearer(TOKENS.viewer) })).json as { paths: Record<string, Record<string, unknown>> };
  const routes: Array<{ method: string; url: string }> = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) if (method !== 'head') routes.push({ method: method.toUpperCase(), url: p.replace(/\{(\w+)\}/g, ':$1') });
  }
  t.ok(routes.length >= 25, `${routes.length} routes`);
  // The table and the document name the same routes: none without a role, none stale.
  const documented = new Set(routes.map((r) => `${r.method} ${r.url}`));
  t.same(
    Object.keys(ROUTE_ACCESS).filter((key) => !documented.has(key)),
    [],
    'every entry of the table is a route',
  );

  const concrete = (url: string, job: string, run: string): string =>
    url.replace('/notifications/destinations/:name', '/notifications/destinations/nowhere').replace(':name', job).replace(':id', run).replace(':type', 'ping');
  const who: Array<{ role: Role | 'none'; token: string | null; limited?: boolean }> = [
    { role: 'none', token: null },
    ...ROLES.map((role) => ({ role, token: TOKENS[role] })),
    { role: 'operator', token: TOKENS.deployer, limited: true },
  ];
  // What GET /whoami lists for each token: the dashboard draws a button exactly for those.
  const listed = new Map<string | null, string[]>();
  for (const w of who) {
    if (w.token) listed.set(w.token, ((await s.request('GET', '/whoami', { headers: bearer(w.token) })).json as unknown as WhoAmI).actions);
  }
  let checked = 0;
  for (const route of routes) {
    const access = routeAccess(route.method, route.url);
    if (!access) {
      t.fail(`${route.method} ${route.url} has no role in the table`);
      continue;
    }
    for (const w of who) {
      // The limited operator acts on its own job's run; the others on the other job's.
      const url = concrete(route.url, w.limited ? 'deploy-web' : 'cleanup', w.limited ? allowedRun : otherRun);
      const res = await s.request(route.method, url, { headers: w.token ? bearer(w.token) : {}, ...(route.method === 'POST' && { body: {} }) });
      const label = `${route.method} ${url} as ${w.role}${w.limited ? ' (deploy-*)' : ''}: ${res.status} ${String(res.json['code'] ?? '')}`;
      if (access.role === 'public') t.not(res.status, 401, label);
      else if (w.role === 'none') t.equal(res.status, 401, label);
      else if (!roleAllows(w.role, access.role)) {
        t.equal(res.status, 403, label);
        t.match(res.json, { code: 'FORBIDDEN', role: access.role, message: new RegExp(`needs the ${access.role} role`) }, label);
      } else if (w.limited && access.target === 'queue') t.equal(res.status, 403, `${label} (a queue holds jobs beyond its globs)`);
      else t.ok(res.status !== 401 && res.status !== 403, label);
      if (access.action && w.token)
        t.equal(listed.get(w.token)?.includes(access.action), res.status !== 403, `${label}: whoami lists ${access.action} iff allowed`);
      checked++;
    }
  }
  t.ok(checked >= routes.length * 5);
});

t.test('a URL the router cannot take is refused as any path is: 401 without a token, 403 from a foreign origin, else 400 without echoing it', async (t) => {
  const s = await teamServer(t);
  const long = 'a'.repeat(250);
  for (const path of ['/jobs/%ZZ', `/jobs/${long}`, `/runs/${long}`, `/xyz/${long}`]) {
    const res = await s.request('GET', path);
    t.match(res, { status: 401, json: { code: 'UNAUTHORIZED' } }, `${path.slice(0, 12)}: 401`);
    t.equal(res.headers.get('www-authenticate'), 'Bearer');
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    t.equal(res.headers.get('cross-origin-resource-policy'), 'same-origin');
    t.match(await s.request('GET', path, { headers: bearer('not-a-token-at-all-0123456789') }), { status: 401, json: { code: 'UNAUTHORIZED' } });
    t.match(await s.request('GET', path, { headers: { ...bearer(TOKENS.viewer), origin: 'http://evil.example' } }), {
      status: 403,
      json: { code: 'ORIGIN_NOT_ALLOWED' },
    });
  }
  const bad = await s.request('GET', '/jobs/%ZZ', { headers: bearer(TOKENS.viewer) });
  t.match(bad, { status: 400, json: { code: 'INVALID_BODY', issues: [{ path: 'params' }] } });
  const tooLong = await s.request('POST', `/jobs/${long}/run`, { headers: bearer(TOKENS.operator), body: {} });
  t.match(tooLong, { status: 400, json: { code: 'INVALID_BODY', message: 'params: a path segment is over 200 characters', issues: [{ path: 'params' }] } });
  t.notMatch(JSON.stringify(tooLong.json), /aaaaaaaaaa/, 'the URL is not echoed back');
});

t.test('a route with no role fails at registration', async (t) => {
  const s = await startServer(t, { start: true });
  const plugin: ServerPlugin = async (app) => {
    app.get('/mine', async () => ({ mine: true }));
  };
  const server = createServer(s.host, { host: '127.0.0.1', port: 0, plugins: [plugin] });
  await t.rejects(async () => {
    await server.app.ready();
  }, /GET \/mine declares no role/);
  const ok: ServerPlugin = async (app) => {
    app.get('/mine', { config: { role: 'operator' } }, async () => ({ mine: true }));
  };
  const s2 = await startServer(t, { config: { server: { tokens: tokensConfig } }, server: { plugins: [ok] } });
  t.match(await s2.request('GET', '/mine', { headers: bearer(TOKENS.viewer) }), { status: 403, json: { code: 'FORBIDDEN', role: 'operator' } });
  t.match(await s2.request('GET', '/mine', { headers: bearer(TOKENS.operator) }), { status: 200, json: { mine: true } });
});

t.test('whoami: name, role, jobs and the actions the token may ask; server.token is admin; no token at all is anonymous', async (t) => {
  const s = await startServer(t, { config: { server: { token: 'the-admin-token', tokens: tokensConfig } } });
  const actionsOf = (role: Role) => Object.values(ROUTE_ACCESS).flatMap((a) => (a.action && a.role !== 'public' && roleAllows(role, a.role) ? [a.action] : []));
  const admin = (await s.request('GET', '/whoami', { headers: bearer('the-admin-token') })).json as unknown as WhoAmI;
  t.same(admin, { name: 'admin', role: 'admin', jobs: null, actions: actionsOf('admin') });
  t.ok(admin.actions.includes('store.damage.ack'), 'an admin may ack store damage');
  const ops = (await s.request('GET', '/whoami', { headers: bearer(TOKENS.operator) })).json as unknown as WhoAmI;
  t.same(ops, { name: 'ops', role: 'operator', jobs: null, actions: actionsOf('operator') });
  t.ok(ops.actions.includes('queue.pause') && ops.actions.includes('queue.resume'), 'an operator of every job may pause a queue');
  const ci = (await s.request('GET', '/whoami', { headers: bearer(TOKENS.deployer) })).json as unknown as WhoAmI;
  const queueActions = ['queue.pause', 'queue.resume'];
  t.same(ci, { name: 'ci', role: 'operator', jobs: ['deploy-*'], actions: actionsOf('operator').filter((a) => !queueActions.includes(a)) });
  t.ok(ci.actions.includes('run.cancel') && ci.actions.includes('job.run') && ci.actions.includes('job.pause'), 'an operator may trigger, cancel, pause a job');
  t.notOk(ci.actions.includes('store.damage.ack'), 'not ack store damage');
  // The host refuses a queue to a token limited by `jobs` (a queue holds other jobs too): not listed, so no button for it.
  t.notOk(ci.actions.includes('queue.pause') || ci.actions.includes('queue.resume'), 'not pause or resume a queue');
  t.same((await s.request('GET', '/whoami', { headers: bearer(TOKENS.viewer) })).json, { name: 'dash', role: 'viewer', jobs: null, actions: [] });
  t.match(await s.request('GET', '/whoami'), { status: 401, json: { code: 'UNAUTHORIZED' } });
  const open = await startServer(t);
  t.same((await open.request('GET', '/whoami')).json, { name: 'anonymous', role: 'admin', jobs: null, actions: actionsOf('admin') });
});

t.test('sha256 tokens: the config holds the digest; the token works, the digest itself does not', async (t) => {
  const plain = 'a-token-only-its-holder-knows-1234';
  const stored = `sha256:${createHash('sha256').update(plain).digest('hex')}`;
  const s = await startServer(t, { config: { server: { tokens: [{ name: 'hashed', token: stored, role: 'viewer' }] } } });
  t.same((await s.request('GET', '/whoami', { headers: bearer(plain) })).json, { name: 'hashed', role: 'viewer', jobs: null, actions: [] });
  t.match(await s.request('GET', '/whoami', { headers: bearer(stored) }), { status: 401 });
  t.match(await s.request('GET', '/whoami', { headers: bearer(stored.slice(7)) }), { status: 401 });
  t.match(await s.request('GET', '/whoami', { headers: bearer(`${plain}x`) }), { status: 401 });
});

t.test(
  'server.token stored as sha256 (in the file or JOBHOST_TOKEN): the token is the admin over HTTP and the WebSocket; the digest text is refused',
  async (t) => {
    const plain = 'the-admin-token-only-its-holder-knows';
    const stored = `sha256:${createHash('sha256').update(plain).digest('hex')}`;
    const fromEnv = await readConfigFile(path.join(tempDir(t), 'none.json'), { JOBHOST_TOKEN: stored }, { missingOk: true });
    t.equal(fromEnv.server.token, stored, 'JOBHOST_TOKEN sets server.token');
    const s = await startServer(t, { config: { server: { token: fromEnv.server.token } } });
    t.match(await s.request('GET', '/whoami', { headers: bearer(plain) }), { status: 200, json: { name: 'admin', role: 'admin', jobs: null } });
    t.equal((await s.request('POST', '/store/damage/ack', { headers: bearer(plain), body: {} })).status, 200, 'an admin change');
    t.match(await s.request('GET', '/whoami', { headers: bearer(stored) }), { status: 401, json: { code: 'UNAUTHORIZED' } });
    t.match(await s.request('GET', '/whoami', { headers: bearer(stored.slice(7)) }), { status: 401 });
    const { ws } = await socket(t, s, plain);
    t.equal(ws.readyState, WebSocket.OPEN, 'the WebSocket with ?token= of the token');
    await t.rejects(socket(t, s, stored), { message: 'refused 401' }, 'not with the digest text');
  },
);

t.test('bad tokens config: errors name the path and never show the token', async (t) => {
  const bad = (tokens: unknown[], server: Record<string, unknown> = {}): Error => {
    try {
      parseConfig({ server: { ...server, tokens } });
    } catch (err) {
      return err as Error;
    }
    throw new Error('accepted');
  };
  const a = 'first-token-0123456789abcdef';
  const b = 'second-token-0123456789abcdef';
  const hashedA = `sha256:${createHash('sha256').update(a).digest('hex')}`;
  const cases: Array<[unknown[], RegExp, Record<string, unknown>?]> = [
    [
      [
        { name: 'x', token: a, role: 'viewer' },
        { name: 'x', token: b, role: 'viewer' },
      ],
      /^server\.tokens\.1\.name: "x" already names server\.tokens\.0/,
    ],
    [
      [
        { name: 'x', token: a, role: 'viewer' },
        { name: 'y', token: a, role: 'admin' },
      ],
      /^server\.tokens\.1\.token: the same token as server\.tokens\.0/,
    ],
    [
      [
        { name: 'x', token: a, role: 'viewer' },
        { name: 'y', token: hashedA, role: 'admin' },
      ],
      /^server\.tokens\.1\.token: the same token as server\.tokens\.0/,
    ],
    [[{ name: 'x', token: a, role: 'superuser' }], /^server\.tokens\.0\.role: /],
    [[{ name: 'x', token: 'short-token', role: 'viewer' }], /^server\.tokens\.0\.token: expected a token of at least 24 characters/],
    [[{ name: 'x', token: 'has spaces in the token value ok', role: 'viewer' }], /^server\.tokens\.0\.token: a token cannot hold spaces or line breaks/],
    [[{ name: 'x', token: 'sha256:abc', role: 'viewer' }], /^server\.tokens\.0\.token: /],
    [[{ name: 'x', token: a, role: 'viewer', jobs: ['a-*'] }], /^server\.tokens\.0\.jobs: jobs limits an operator/],
    [[{ name: 'admin', token: a, role: 'viewer' }], /^server\.tokens\.0\.name: "admin" is reserved/, { token: 'admin-token-1' }],
    [[{ name: 'y', token: a, role: 'viewer' }], /^server\.tokens\.0\.token: the same token as server\.token/, { token: a }],
    [
      [{ name: 'y', token: '$' + '{JOBHOST_ACCESS_TEST_UNSET}', role: 'viewer' }],
      /^server\.tokens\.0\.token: environment variable JOBHOST_ACCESS_TEST_UNSET is not set/,
    ],
  ];
  for (const [tokens, message, server] of cases) {
    const err = bad(tokens, server);
    t.match(err, { code: 'CONFIG_INVALID', message }, String(message));
    t.notMatch(err.message, a, 'the token is not shown');
    t.notMatch(err.message, b, 'the token is not shown');
  }
  process.env['JOBHOST_ACCESS_TEST_TOKEN'] = b;
  t.teardown(() => delete process.env['JOBHOST_ACCESS_TEST_TOKEN']);
  const config = parseConfig({ server: { tokens: [{ name: 'env', token: '$' + '{JOBHOST_ACCESS_TEST_TOKEN}', role: 'viewer' }] } });
  t.equal(config.server.tokens[0]!.token, b, 'a token is read from the environment');
});

t.test('a glob that matches no job is a warning naming its path', async (t) => {
  const { logger, lines } = captureLogger();
  const s = await teamServer(t, {});
  s.host.applyConfig({
    ...s.host.config,
    server: { tokens: [...tokensConfig, { name: 'typo', token: 'typo-token-0123456789abcdef', role: 'operator', jobs: ['deploi-*'] }] },
  });
  const server = createServer(s.host, { host: '127.0.0.1', port: 0, logger });
  t.teardown(() => server.close());
  server.access.warnUnmatched();
  t.same(
    lines.filter((l) => l['level'] === 40).map((l) => l['path']),
    ['server.tokens.4.jobs.0'],
  );
});

t.test('an operator limited to jobs: its jobs only; bulk actions and events say what they left out', async (t) => {
  const s = await teamServer(t);
  const ci = bearer(TOKENS.deployer);
  s.host.pause();
  t.equal((await s.request('POST', '/jobs/deploy-web/run', { headers: ci })).status, 202);
  const refused = await s.request('POST', '/jobs/cleanup/run', { headers: ci });
  t.match(refused, { status: 403, json: { code: 'FORBIDDEN', role: 'operator', job: 'cleanup' } });
  t.equal((await s.request('POST', '/jobs/cleanup/disable', { headers: ci })).status, 403);
  const waiting = await s.host.trigger('cleanup');
  t.match(await s.request('POST', `/runs/${waiting.runId}/cancel`, { headers: ci }), { status: 403, json: { job: 'cleanup' } });
  const bulk = await s.request('POST', '/runs/cancel', { headers: ci, body: { dryRun: true } });
  t.match(bulk.json, { matched: 1, excluded: { runs: 1, jobs: ['cleanup'] } }, 'the queued deploy-web run counts; cleanup is left out');
  t.match(await s.request('POST', '/runs/cancel', { headers: ci, body: { job: 'cleanup' } }), { status: 403 });
  const ops = await s.request('POST', '/runs/cancel', { headers: bearer(TOKENS.operator), body: { dryRun: true } });
  t.match(ops.json, { matched: 2 });
  t.notOk('excluded' in ops.json, 'an unlimited operator leaves nothing out');
  const event = await s.request('POST', '/events/ping', { headers: ci, body: {} });
  t.equal(event.status, 202);
  t.match(event.json, { excluded: ['cleanup'] });
  t.equal((event.json['enqueued'] as string[]).length, 1);
  s.host.resume();
});

t.test('an operator limited to jobs is refused a job outside them before its body is read: 403 and audited forbidden, whatever the body', async (t) => {
  const s = await teamServer(t);
  const ci = bearer(TOKENS.deployer);
  s.host.pause();
  const waiting = await s.host.trigger('cleanup');
  const asked: Array<[string, string, unknown]> = [
    ['/jobs/cleanup/run', 'job:cleanup', { bogus: 1 }],
    ['/runs/cancel', 'job:cleanup', { job: 'cleanup', bogus: 1 }],
    [`/runs/${waiting.runId}/retry`, `run:${waiting.runId}`, { bogus: 1 }],
  ];
  for (const [url, , body] of asked) {
    t.match(await s.request('POST', url, { headers: ci, body }), { status: 403, json: { code: 'FORBIDDEN', role: 'operator', job: 'cleanup' } }, url);
  }
  // A body that is not JSON, or not JSON at all, does not turn the path's job's 403 into a 400 or 415.
  const unreadable: Array<[string, Record<string, string>]> = [
    ['{"params": ', {}],
    ['params=1', { 'content-type': 'text/plain' }],
  ];
  for (const [body, headers] of unreadable) {
    t.match(
      await s.request('POST', '/jobs/cleanup/run', { headers: { ...ci, ...headers }, body }),
      { status: 403, json: { code: 'FORBIDDEN', job: 'cleanup' } },
      body,
    );
    asked.push(['/jobs/cleanup/run', 'job:cleanup', body]);
  }
  // Its own jobs' bad bodies are still bad bodies; a job that is not a name is for validation to refuse.
  t.match(await s.request('POST', '/jobs/deploy-web/run', { headers: ci, body: { bogus: 1 } }), { status: 400, json: { code: 'INVALID_BODY' } });
  t.match(await s.request('POST', '/runs/cancel', { headers: ci, body: { job: 7 } }), { status: 400, json: { code: 'INVALID_BODY' } });
  // The role check still comes first.
  t.match(await s.request('POST', '/jobs/cleanup/run', { headers: bearer(TOKENS.viewer), body: { bogus: 1 } }), {
    status: 403,
    json: { code: 'FORBIDDEN', role: 'operator', token: 'dash' },
  });
  const records = (await s.host.audit.list({ token: 'ci' })).items.reverse();
  t.same(
    records.map((r) => [r.target, r.outcome, r.status, r.code]),
    [
      ...asked.map(([, target]) => [target, 'forbidden', 403, 'FORBIDDEN']),
      ['job:deploy-web', 'error', 400, 'INVALID_BODY'],
      ['job:7', 'error', 400, 'INVALID_BODY'],
    ],
  );
  s.host.resume();
});

async function socket(t: Tap, s: TestServer, token: string | null, how: 'query' | 'header' = 'query'): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const base = `${s.url.replace('http', 'ws')}/events`;
  const ws = new WebSocket(token && how === 'query' ? `${base}?token=${token}` : base, { headers: token && how === 'header' ? bearer(token) : {} });
  t.teardown(() => ws.terminate());
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  const opened = await new Promise<boolean | number>((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => undefined);
  });
  if (opened !== true) throw new Error(`refused ${opened}`);
  return { ws, closed };
}

t.test('the WebSocket with each role; a token removed by a config edit closes its sockets', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'jobhost.json');
  const config = { server: { tokens: tokensConfig }, store: { dir: path.join(dir, 'data') } };
  writeFileSync(file, JSON.stringify(config));
  const s = await startServer(t, { config, dir: path.join(dir, 'data') });
  const watcher = new ConfigWatcher(s.host, { file, env: {}, debounceMs: 20 });
  await watcher.start();
  t.teardown(() => watcher.stop());

  const sockets = new Map<string, { ws: WebSocket; closed: Promise<number> }>();
  for (const [role, token] of Object.entries(TOKENS)) sockets.set(role, await socket(t, s, token, role === 'admin' ? 'header' : 'query'));
  await t.rejects(socket(t, s, null), { message: 'refused 401' });
  await t.rejects(socket(t, s, 'not-a-token-of-this-host-at-all'), { message: 'refused 401' });

  // The operator's token goes; the others stay.
  const reloaded = nextEvent(s.host, (e) => e.type === 'config.reloaded');
  writeFileSync(file, JSON.stringify({ ...config, server: { tokens: tokensConfig.filter((x) => x.name !== 'ops') } }));
  t.match((await reloaded).data, { changed: ['server.tokens'], restartRequired: [] }, 'tokens need no restart');
  t.equal(await sockets.get('operator')!.closed, 1008, 'the removed token’s socket is closed (1008)');
  t.equal(sockets.get('viewer')!.ws.readyState, WebSocket.OPEN);
  t.equal(sockets.get('admin')!.ws.readyState, WebSocket.OPEN);
  t.equal(sockets.get('deployer')!.ws.readyState, WebSocket.OPEN);
  t.match(await s.request('GET', '/jobs', { headers: bearer(TOKENS.operator) }), { status: 401 }, 'and it stops working over HTTP at once');
  t.equal((await s.request('GET', '/jobs', { headers: bearer(TOKENS.viewer) })).status, 200);
  await t.rejects(socket(t, s, TOKENS.operator), { message: 'refused 401' });

  // A role change takes effect at the next request too.
  writeFileSync(file, JSON.stringify({ ...config, server: { tokens: tokensConfig.map((x) => (x.name === 'dash' ? { ...x, role: 'admin' } : x)) } }));
  const statuses: number[] = [];
  await until(
    async () => {
      statuses.push((await s.request('POST', '/store/damage/ack', { headers: bearer(TOKENS.viewer), body: {} })).status);
      return statuses.at(-1) === 200;
    },
    5000,
    'the new role',
  );
  t.equal(statuses[0], 403, 'a viewer before the edit');
});
