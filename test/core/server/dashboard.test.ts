import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import t from 'tap';
import { createDashboard, dashboard } from '../../../core/server/dashboard.js';
import { createServer } from '../../../core/server/server.js';
import { startHost, startServer, tempDir } from '../../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');

/** A GET with the path sent exactly as given (fetch would normalize `..` away). */
function rawGet(url: string, rawPath: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path: rawPath, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('GET / is the page; its assets come with their content types and revalidation headers', async (t) => {
  const { request } = await startServer(t, { server: { plugins: [dashboard] } });
  const page = await request('GET', '/');
  t.equal(page.status, 200);
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  t.match(page.text, /<title>jobhost<\/title>/);
  t.match(page.text, /<script type="module" src="\/assets\/app.js"><\/script>/);
  t.match(page.headers.get('content-security-policy'), /default-src 'none'.*script-src 'self'.*connect-src 'self'/);
  t.equal(page.headers.get('x-content-type-options'), 'nosniff');
  t.equal(page.headers.get('cache-control'), 'no-cache');
  for (const [file, type] of [
    ['app.js', 'text/javascript; charset=utf-8'],
    ['api.js', 'text/javascript; charset=utf-8'],
    ['app.css', 'text/css; charset=utf-8'],
    ['icon.svg', 'image/svg+xml'],
  ] as const) {
    const res = await request('GET', `/assets/${file}`);
    t.equal(res.status, 200, file);
    t.equal(res.headers.get('content-type'), type, `${file}: ${type}`);
    t.equal(res.text, readFileSync(path.join(ROOT, 'core/server/dashboard', file), 'utf8'), `${file}: the file as it is`);
    t.equal(res.headers.get('cache-control'), 'no-cache');
    t.match(res.headers.get('etag'), /^"[\w-]{22}"$/);
  }
});

t.test('an unchanged file costs a 304; HEAD works', async (t) => {
  const { request } = await startServer(t, { server: { plugins: [dashboard] } });
  const first = await request('GET', '/assets/app.js');
  const etag = first.headers.get('etag')!;
  const again = await request('GET', '/assets/app.js', { headers: { 'if-none-match': etag } });
  t.equal(again.status, 304);
  t.equal(again.text, '');
  t.equal((await request('GET', '/assets/app.js', { headers: { 'if-none-match': `"other", ${etag}` } })).status, 304);
  t.equal((await request('GET', '/assets/app.js', { headers: { 'if-none-match': '"stale"' } })).status, 200);
  t.equal((await request('GET', '/', { headers: { 'if-none-match': (await request('GET', '/')).headers.get('etag')! } })).status, 304);
  const head = await request('HEAD', '/assets/app.css');
  t.equal(head.status, 200);
  t.equal(head.text, '');
});

t.test('unknown assets are 404; no path from a request reaches the file system', async (t) => {
  const { url, request } = await startServer(t, { server: { plugins: [dashboard] } });
  t.match((await request('GET', '/assets/nope.js')).json, { statusCode: 404, code: 'NOT_FOUND' });
  t.equal((await request('GET', '/assets/index.html')).status, 404, 'the page lives at / only');
  t.equal((await request('GET', '/assets/')).status, 404);
  const attempts = [
    '/assets/../package.json',
    '/assets/../../package.json',
    '/assets/..%2F..%2Fpackage.json',
    '/assets/%2e%2e%2fserver.ts',
    '/assets/..%5Cserver.ts',
    '/assets/.%2e/dashboard.ts',
    '/assets/%2Fetc%2Fpasswd',
    '/assets//etc/passwd',
    '/assets/app.js%00.css',
    '/assets/app.js/',
    '/assets/.',
    '/../core/server.ts',
    '/dashboard/app.js',
    '/core/dashboard/app.js',
  ];
  for (const attempt of attempts) {
    const res = await rawGet(url, attempt);
    t.ok(res.status === 404 || res.status === 400, `${attempt}: ${res.status}`);
    t.notMatch(res.body, /"name": "jobhost"|import |root:/, `${attempt}: nothing of a file`);
  }
});

t.test('serves only the page, scripts, styles and icons directly in its folder', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>custom</title>');
  writeFileSync(path.join(dir, 'main.js'), 'export {};\n');
  writeFileSync(path.join(dir, '.secret.js'), 'secret\n');
  writeFileSync(path.join(dir, 'notes.md'), '# notes\n');
  mkdirSync(path.join(dir, 'sub.js'));
  const { request } = await startServer(t, { server: { plugins: [createDashboard({ dir })] } });
  t.match((await request('GET', '/')).text, '<title>custom</title>');
  t.equal((await request('GET', '/assets/main.js')).status, 200);
  for (const file of ['.secret.js', 'notes.md', 'sub.js']) t.equal((await request('GET', `/assets/${file}`)).status, 404, file);
});

t.test('a folder without index.html is refused when the server starts', async (t) => {
  const { host } = await startHost(t);
  const server = createServer(host, { host: '127.0.0.1', port: 0, plugins: [createDashboard({ dir: tempDir(t) })] });
  await t.rejects(server.listen(), /has no index\.html/);
  await server.close();
});

t.test('with a token: the shell loads without it, the API and the WebSocket still need it', async (t) => {
  const token = 'dashboard-test-token';
  const { url, request } = await startServer(t, { server: { plugins: [dashboard], token } });
  t.equal((await request('GET', '/')).status, 200, 'the page, to ask for the token');
  t.equal((await request('GET', '/assets/app.js')).status, 200);
  t.equal((await request('GET', '/assets/nope.js')).status, 404);
  t.equal((await request('GET', '/health')).status, 200);
  for (const route of ['/jobs', '/stats', '/runs', '/notifications', '/ready', '/metrics', '/openapi.json', '/index.html', '/nope']) {
    const res = await request('GET', route);
    t.equal(res.status, 401, route);
    t.equal(res.json['code'], 'UNAUTHORIZED');
  }
  t.equal((await request('POST', '/jobs/x/run', { body: {} })).status, 401);
  const ws = await rawGet(url, '/events?since=0');
  t.equal(ws.status, 401, 'the event stream');
  t.equal((await request('GET', '/stats', { headers: { authorization: `Bearer ${token}` } })).status, 200);
});

t.test('the dashboard routes stay out of the OpenAPI document', async (t) => {
  const { request } = await startServer(t, { server: { plugins: [dashboard] } });
  const doc = (await request('GET', '/openapi.json')).json as { paths: Record<string, unknown> };
  t.notOk('/' in doc.paths);
  t.notOk(Object.keys(doc.paths).some((p) => p.startsWith('/assets')));
});
