import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { parseConfig } from '../../core/contract/config.js';
import { isHostError } from '../../core/contract/errors.js';
import { freshPrefix } from '../cluster.js';
import { until } from '../helpers.js';
import { type Certs, makeCerts, startTlsRedis } from '../redis-ha.js';
import { makeProject, runCli } from './project.js';

/**
 * SPEC §11, high availability: `rediss://` with `backend.tls` (a private CA, a client
 * certificate) and a Redis ACL user from the URL, as users run it (`jobhost start`). The password
 * is never shown: not in `/cluster`, `/ready`, `/metrics`, a run, an error body, nor a log line.
 * A wrong password or an untrusted certificate fails the start at once, with the reason.
 */

const PASSWORD = 'Pw-7f3a9c-never-shown';
const USER = 'jobhost-acc';

const plugin = `export default {
  name: 'hello',
  async handler(ctx) {
    ctx.log.info({ step: 1 }, 'hello from a run');
    return { ok: true };
  },
};
`;

const tlsOf = (certs: Certs) => ({ ca: readFileSync(certs.ca), cert: readFileSync(certs.cert), key: readFileSync(certs.key) });

const post = (url: string, body: unknown = {}): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

t.test('rediss:// with a private CA, a client certificate and an ACL user: the host runs triggers, and the password appears nowhere', async (t) => {
  const certs = makeCerts(t);
  const redis = await startTlsRedis(t, certs, [`${USER} on >${PASSWORD} ~* &* +@all`, 'admin on >admin-pw ~* &* +@all'], {
    username: USER,
    password: PASSWORD,
  });
  const url = `rediss://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${redis.port}`;
  const dir = makeProject(
    t,
    {
      server: { port: 0 },
      backend: { kind: 'redis', url, prefix: freshPrefix(), tls: { ca: certs.ca, cert: certs.cert, key: certs.key } },
      cluster: { id: 'tls-a' },
    },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins', 'hello.ts'), plugin);
  // debug: every line the host can write, for the grep below.
  const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'debug' });
  const started = await app.waitFor((l) => l.msg.startsWith('jobhost started'), 'host started');
  const base = started['url'] as string;

  const res = await post(`${base}/jobs/hello/run`);
  t.equal(res.status, 202, 'a trigger over TLS is acknowledged');
  const { runId } = (await res.json()) as { runId: string };
  let run: { status: string; host: string } | undefined;
  await until(
    async () => {
      run = (await (await fetch(`${base}/runs/${runId}`)).json()) as { status: string; host: string };
      return run.status === 'succeeded';
    },
    15_000,
    'the run to succeed',
  );
  t.equal(run?.host, 'tls-a', 'and it ran');

  const answers: Record<string, string> = {};
  for (const route of ['/cluster', '/ready', '/metrics', '/stats', `/runs/${runId}`, `/runs/${runId}/logs`, '/jobs/hello', '/jobs/nope', '/runs/nope']) {
    answers[route] = await (await fetch(`${base}${route}`)).text();
  }
  const ready = JSON.parse(answers['/ready']!) as { backend: { target: string; available: boolean } };
  t.match(ready.backend, { available: true, target: `rediss://127.0.0.1:${redis.port}` }, '/ready names the server by scheme, host and port only');
  t.match(JSON.parse(answers['/cluster']!), { backend: 'redis', self: 'tls-a' });

  // The password changes under the running host and its connections are cut: every reconnect is
  // refused (WRONGPASS), the errors that carry the AUTH command are logged (debug), then it comes back.
  const admin = new Redis({ host: '127.0.0.1', port: redis.port, tls: tlsOf(certs), username: 'admin', password: 'admin-pw', maxRetriesPerRequest: 0 });
  t.teardown(() => admin.disconnect());
  await admin.call('ACL', 'SETUSER', USER, 'resetpass', '>another-password');
  await admin.call('CLIENT', 'KILL', 'USER', USER);
  await app.waitFor((l) => JSON.stringify(l).includes('WRONGPASS'), 'the refused reconnect logged');
  const refused = await post(`${base}/jobs/hello/run`);
  answers['refused trigger'] = await refused.text();
  t.equal(refused.status, 503, 'a trigger while Redis refuses the password: 503');
  await until(
    async () => {
      answers['/ready while refused'] = await (await fetch(`${base}/ready`)).text();
      return /WRONGPASS: wrong user name or password/.test(answers['/ready while refused']);
    },
    10_000,
    '/ready to say why',
  );
  t.match(JSON.parse(answers['/ready while refused']!), { status: 'degraded', backend: { available: false } }, '/ready says Redis refuses the password');
  await admin.call('ACL', 'SETUSER', USER, 'resetpass', `>${PASSWORD}`);
  await until(async () => (await post(`${base}/jobs/hello/run`)).status === 202, 15_000, 'triggers accepted again');

  app.child.kill('SIGTERM');
  await app.exited;
  const everything = [...Object.values(answers), JSON.stringify(app.lines), app.stderr()].join('\n');
  t.ok(everything.includes(String(redis.port)), 'the checked output does name the server');
  t.notOk(everything.includes(PASSWORD), 'the password is in no answer, log line or error');
  t.notOk(everything.includes(encodeURIComponent(PASSWORD)), 'nor URL-encoded');
});

t.test('a wrong password, an untrusted certificate, an unreadable CA file: the start fails at once with the reason (exit 1)', async (t) => {
  const certs = makeCerts(t);
  const redis = await startTlsRedis(t, certs, [`${USER} on >${PASSWORD} ~* &* +@all`], { username: USER, password: PASSWORD });
  const start = async (url: string, tls: object): Promise<{ code: number | null; stderr: string; ms: number }> => {
    const dir = makeProject(t, { server: { port: 0 }, backend: { kind: 'redis', url, prefix: freshPrefix(), tls } }, { examples: false });
    const began = Date.now();
    const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'debug' });
    const code = await app.exited;
    return { code, stderr: app.stderr() + JSON.stringify(app.lines), ms: Date.now() - began };
  };
  const good = { ca: certs.ca, cert: certs.cert, key: certs.key };
  const wrong = 'Wrong-pw-0b1c2d';

  const badPassword = await start(`rediss://${USER}:${wrong}@127.0.0.1:${redis.port}`, good);
  t.equal(badPassword.code, 1, 'wrong password: exit 1');
  t.match(
    badPassword.stderr,
    /jobhost: cannot start: BACKEND_UNAVAILABLE cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+ \(WRONGPASS: wrong user name or password/,
  );
  t.notOk(badPassword.stderr.includes(wrong), 'the password tried is not shown');
  t.ok(badPassword.ms < 20_000, `it fails at once, not in a retry loop (${badPassword.ms} ms with the start of node)`);

  const stranger = await start(`rediss://${USER}:${PASSWORD}@127.0.0.1:${redis.port}`, { ...good, ca: certs.otherCa });
  t.equal(stranger.code, 1, 'a server certificate from a CA not trusted: exit 1');
  t.match(
    stranger.stderr,
    /BACKEND_UNAVAILABLE cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+ \([A-Z_]+: the server's certificate is signed by a CA jobhost does not trust \(backend\.tls\.ca\)\)/,
  );
  t.notOk(stranger.stderr.includes(PASSWORD), 'the password is not shown');
  t.ok(stranger.ms < 20_000, `at once (${stranger.ms} ms)`);

  // This Redis has `tls-auth-clients yes`: it drops a client without a certificate, and the reason says so.
  const noCert = await start(`rediss://${USER}:${PASSWORD}@127.0.0.1:${redis.port}`, { ca: certs.ca });
  t.equal(noCert.code, 1, 'no client certificate: exit 1');
  // TLS 1.3: the server's alert, or the reset, whichever reaches the client first; both name the setting.
  t.match(
    noCert.stderr,
    /BACKEND_UNAVAILABLE cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+ \((ECONNRESET|ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED): .*backend\.tls\.cert and key\)/,
  );
  t.notMatch(noCert.stderr, /maxRetriesPerRequest/, "not ioredis's own wording");

  const missing = await start(`rediss://${USER}:${PASSWORD}@127.0.0.1:${redis.port}`, { ...good, ca: path.join(path.dirname(certs.ca), 'nope.crt') });
  t.equal(missing.code, 1, 'a CA file that cannot be read: exit 1');
  t.match(missing.stderr, /BACKEND_UNAVAILABLE backend\.tls\.ca: cannot read .*nope\.crt \(ENOENT\)/);
});

t.test('backend.tls needs rediss://, and sentinels need the master name: config errors naming the path', async (t) => {
  const fails = (backend: object): string => {
    try {
      parseConfig({ backend });
      return 'accepted';
    } catch (err) {
      return isHostError(err) ? `${err.code} ${err.message}` : String(err);
    }
  };
  t.match(fails({ kind: 'redis', url: 'redis://127.0.0.1:6379', tls: { ca: 'ca.crt' } }), /^CONFIG_INVALID backend\.tls: TLS needs a rediss:\/\/ url/);
  t.match(fails({ kind: 'redis', sentinels: [{ host: '127.0.0.1', port: 26379 }] }), /^CONFIG_INVALID backend\.name: sentinels and name/);
  t.match(fails({ kind: 'redis', url: 'rediss://127.0.0.1:6379', tls: { cert: 'c.crt' } }), /^CONFIG_INVALID backend\.tls: cert and key go together/);
  t.match(fails({ kind: 'redis', waitReplicas: -1 }), /^CONFIG_INVALID backend\.waitReplicas/);
  t.equal(fails({ kind: 'redis', url: 'rediss://u:p@127.0.0.1:6380', tls: { ca: 'ca.crt' }, waitReplicas: 1, waitTimeout: '2s' }), 'accepted');
});
