import { availableParallelism } from 'node:os';
import t from 'tap';
import { parseConfig } from '../../../core/contract/config.js';

t.test('{} is a valid config with every default filled in', async (t) => {
  const c = parseConfig({});
  t.same(c.server, { host: '127.0.0.1', port: 3000, token: null, tokens: [], bodyLimit: 1024 * 1024, allowedOrigins: [], allowedHosts: [], publicUrl: null });
  t.same(c.store, { dir: 'data', keepRuns: 1000, keepDays: 30, fsync: true });
  t.same(c.plugins, { dir: 'plugins', watch: true, importTimeout: 10_000 });
  t.same(c.defaults, { timezone: 'UTC', timeout: 300_000, isolation: 'worker' });
  t.same(c.workers, { size: availableParallelism(), max: null, grace: 5_000, maxMemoryMb: 1024, nice: 10 });
  t.same(c.eventLoop, { maxDelay: 500 });
  t.equal(c.concurrency, 8);
  t.same(c.queues, { critical: 6, default: 2, low: 1 });
  t.same(c.shutdown, { grace: 30_000, margin: 30_000 });
  t.same(c.jobs, {});
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.server) && Object.isFrozen(c.queues));
  t.same(parseConfig(undefined), c);
});

t.test('the SPEC example config parses', async (t) => {
  const c = parseConfig({
    server: { host: '127.0.0.1', port: 3000, token: null },
    store: { dir: 'data', keepRuns: 1000, keepDays: 30 },
    plugins: { dir: 'plugins', watch: true },
    defaults: { timezone: 'UTC', timeout: '5m' },
    concurrency: 8,
    queues: { critical: 6, default: 2, low: 1 },
    shutdown: { grace: '30s' },
    jobs: { 'cleanup-temp-files': { schedule: '0 */3 * * *', enabled: true, params: { dir: '/var/tmp' } } },
  });
  t.same(c.jobs['cleanup-temp-files'], { schedule: { kind: 'cron', expr: '0 */3 * * *' }, enabled: true, params: { dir: '/var/tmp' } });
});

t.test('allowed origins and hosts are kept in the form requests carry them', async (t) => {
  const c = parseConfig({
    server: {
      allowedOrigins: ['https://Jobs.Example.com', 'https://jobs.example.com:443/', 'http://localhost:8080', 'http://[::1]:3000'],
      allowedHosts: ['Jobs.Example.com', 'proxy.internal:8443', '[::1]:3000', 'my_service'],
    },
  });
  t.same(c.server.allowedOrigins, ['https://jobs.example.com', 'https://jobs.example.com', 'http://localhost:8080', 'http://[::1]:3000']);
  t.same(c.server.allowedHosts, ['jobs.example.com', 'proxy.internal:8443', '[::1]:3000', 'my_service']);
});

t.test('a queues map without default still gets one', async (t) => {
  t.same(parseConfig({ queues: { fast: 3 } }).queues, { fast: 3, default: 1 });
  t.equal(parseConfig({ queues: { fast: 3 }, jobs: { x: { queue: 'default' } } }).jobs['x']?.queue, 'default');
});

t.test('bad values and unknown keys name the path', async (t) => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ jobs: { x: { schedule: '61 * * * *' } } }, 'INVALID_CRON', /^jobs\.x\.schedule: invalid cron/],
    [{ jobs: { x: { timezone: 'Nope/Nope' } } }, 'INVALID_TIMEZONE', /^jobs\.x\.timezone: /],
    [{ jobs: { x: { speed: 1 } } }, 'CONFIG_INVALID', /^jobs\.x: unknown key "speed"/],
    [{ jobs: { 'Bad Name': {} } }, 'CONFIG_INVALID', /^jobs\.Bad Name: /],
    [{ server: { port: 70000 } }, 'CONFIG_INVALID', /^server\.port: /],
    [{ server: { token: 'short' } }, 'CONFIG_INVALID', /^server\.token: a token needs at least 8 characters/],
    [{ server: { token: 'has spaces in it' } }, 'CONFIG_INVALID', /^server\.token: a token cannot hold spaces or line breaks/],
    [{ concurrency: 0 }, 'CONFIG_INVALID', /^concurrency: /],
    [
      { server: { allowedOrigins: ['jobs.example.com'] } },
      'CONFIG_INVALID',
      /^server\.allowedOrigins\.0: expected an origin such as https:\/\/jobs\.example\.com/,
    ],
    [{ server: { allowedOrigins: ['https://ok.example.com', 'https://jobs.example.com/app'] } }, 'CONFIG_INVALID', /^server\.allowedOrigins\.1: .*no path/],
    [{ server: { allowedOrigins: ['*'] } }, 'CONFIG_INVALID', /^server\.allowedOrigins\.0: /],
    [{ server: { allowedOrigins: ['ftp://jobs.example.com'] } }, 'CONFIG_INVALID', /^server\.allowedOrigins\.0: /],
    [{ server: { allowedOrigins: 'https://jobs.example.com' } }, 'CONFIG_INVALID', /^server\.allowedOrigins: /],
    [{ server: { allowedHosts: ['https://jobs.example.com'] } }, 'CONFIG_INVALID', /^server\.allowedHosts\.0: expected a host name such as jobs\.example\.com/],
    [{ server: { allowedHosts: ['jobs.example.com:99999'] } }, 'CONFIG_INVALID', /^server\.allowedHosts\.0: /],
    [{ server: { allowedHosts: ['*.example.com'] } }, 'CONFIG_INVALID', /^server\.allowedHosts\.0: /],
    [{ queues: { default: 0 } }, 'CONFIG_INVALID', /^queues\.default: /],
    [{ jobs: { x: { queue: 'urgent' } } }, 'CONFIG_INVALID', /^jobs\.x\.queue: unknown queue "urgent" \(queues: critical, default, low\)/],
    [{ shutdown: { grace: 'a while' } }, 'INVALID_DURATION', /^shutdown\.grace: /],
    [{ defaults: { timeout: true } }, 'INVALID_DURATION', /^defaults\.timeout: /],
    [{ surprise: 1 }, 'CONFIG_INVALID', /^\(root\): unknown key "surprise"/],
    [[], 'CONFIG_INVALID', /^\(root\): /],
    [null, 'CONFIG_INVALID', /^\(root\): .*expected object, received null/],
  ];
  for (const [input, code, message] of cases) {
    t.throws(() => parseConfig(input), { code, message }, JSON.stringify(input));
  }
});

t.test('backend: local by default; redis with its defaults; bad values name their path', async (t) => {
  const c = parseConfig({});
  t.same(c.backend, { kind: 'local' });
  t.same(c.cluster, {});
  const redis = parseConfig({ backend: { kind: 'redis' }, cluster: { id: 'web-1' } });
  t.same(redis.backend, {
    kind: 'redis',
    url: 'redis://127.0.0.1:6379',
    prefix: 'jobhost',
    lockDuration: 30_000,
    stalledInterval: 30_000,
    streamLength: 50_000,
    commandTimeout: 10_000,
    waitReplicas: 0,
    waitTimeout: 1000,
  });
  t.equal(redis.cluster.id, 'web-1');
  const full = parseConfig({
    backend: { kind: 'redis', url: 'rediss://u:p@redis.internal:6380/2', prefix: 'jobs-{eu}', lockDuration: '5s', stalledInterval: '2s' },
  });
  t.match(full.backend, { url: 'rediss://u:p@redis.internal:6380/2', prefix: 'jobs-{eu}', lockDuration: 5000, stalledInterval: 2000 });
  t.throws(() => parseConfig({ backend: { kind: 'redis', url: 'http://example.com' } }), {
    code: 'CONFIG_INVALID',
    message: /^backend\.url: expected a Redis URL/,
  });
  t.throws(() => parseConfig({ backend: { kind: 'redis', url: 'redis://host/db/x' } }), { code: 'CONFIG_INVALID', message: /^backend\.url: / });
  t.throws(() => parseConfig({ backend: { kind: 'redis', prefix: 'a:b' } }), { code: 'CONFIG_INVALID', message: /^backend\.prefix: / });
  t.throws(() => parseConfig({ backend: { kind: 'redis', lockDuration: 'soon' } }), { code: 'INVALID_DURATION', message: /^backend\.lockDuration: / });
  t.throws(() => parseConfig({ backend: { kind: 'postgres' } }), { code: 'CONFIG_INVALID', message: /^backend\.kind: / });
  t.throws(() => parseConfig({ backend: { kind: 'local', url: 'redis://x' } }), { code: 'CONFIG_INVALID', message: /^backend: unknown key "url"/ });
  t.throws(() => parseConfig({ cluster: { id: '' } }), { code: 'CONFIG_INVALID', message: /^cluster\.id: / });
});

t.test('webhook headers: a name is an HTTP token, a value has no line break, the host keeps its own; notifications.timeout is more than 0', async (t) => {
  const hook = (headers: Record<string, string>) => ({ notifications: { destinations: { hook: { kind: 'webhook', url: 'http://127.0.0.1:9/in', headers } } } });
  t.same(parseConfig(hook({ authorization: 'Bearer tok_1', 'X-Api-Key': 'k\tv é', Host: 'hooks.internal' })).notifications.destinations['hook'], {
    kind: 'webhook',
    url: 'http://127.0.0.1:9/in',
    headers: { authorization: 'Bearer tok_1', 'X-Api-Key': 'k\tv é', Host: 'hooks.internal' },
  });
  const cases: Array<[unknown, RegExp]> = [
    [hook({ 'X Bad Name': 'v' }), /^notifications\.destinations\.hook\.headers\.X Bad Name: expected an HTTP header name/],
    [hook({ 'x-token': 'secret-value\r\nx-evil: 1' }), /^notifications\.destinations\.hook\.headers\.x-token: expected a header value without line breaks/],
    [hook({ 'Content-Length': '5' }), /^notifications\.destinations\.hook\.headers\.Content-Length: the host writes this header itself/],
    [hook({ 'webhook-signature': 'v1,x' }), /: the host writes this header itself/],
    [{ notifications: { timeout: '0s' } }, /^notifications\.timeout: expected more than 0/],
    [{ notifications: { timeout: 0 } }, /^notifications\.timeout: expected more than 0/],
  ];
  for (const [input, message] of cases) {
    t.throws(() => parseConfig(input), { code: 'CONFIG_INVALID', message }, JSON.stringify(input));
    try {
      parseConfig(input);
    } catch (err) {
      t.notMatch((err as Error).message, /secret-value/, 'the message never repeats a value');
    }
  }
});
