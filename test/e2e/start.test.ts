import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BIN, childEnv, makeProject, runCli } from './project.js';

const ev = (type: string, job?: string) => (l: { event?: string; job?: unknown }) => l.event === type && (job === undefined || l.job === job);

t.test('jobhost start: loads the example plugins, runs schedules, adds a dropped file, applies a config edit, stops on SIGTERM', async (t) => {
  const config = {
    // every second here, so the test sees a scheduled run without waiting hours
    jobs: { 'cleanup-temp-files': { schedule: '* * * * * *', params: { dir: 'data/tmp' } } },
    // A jobs glob that matches no job: warned at load and again at each config edit.
    server: { port: 0, tokens: [{ name: 'ci', token: 'ci-token-0123456789abcdefghij', role: 'operator', jobs: ['deploi-*'] }] },
  };
  const dir = makeProject(t, config);
  const app = runCli(t, dir, ['start']);
  await app.waitFor(ev('host.started'), 'host.started');
  const registered = app.lines
    .filter((l) => l.event === 'job.registered')
    .map((l) => l.job)
    .sort();
  t.same(registered, ['cleanup-temp-files', 'daily-digest', 'shipment-follow-up', 'url-health-check']);

  const started = await app.waitFor((l) => /dashboard and API at http/.test(l.msg), 'the dashboard URL');
  const page = await fetch(String(started['url']));
  t.equal(page.status, 200, 'the printed URL serves the dashboard');
  t.match(await page.text(), /<title>jobhost<\/title>/);

  const unmatched = (l: { path?: unknown; level?: number }) => l.level === 40 && l.path === 'server.tokens.0.jobs.0';
  const warnedAtLoad = await app.waitFor(unmatched, 'the unmatched glob warned at load');
  t.match(warnedAtLoad, { msg: 'server.tokens.0.jobs.0: "deploi-*" (token "ci") matches no job', glob: 'deploi-*', token: 'ci' });
  const ran = await app.waitFor((l) => l.event === 'run.succeeded' && l.job === 'cleanup-temp-files', 'a scheduled run');
  t.ok(ran, 'the schedule fired and the run succeeded');

  let from = app.lines.length;
  writeFileSync(path.join(dir, 'plugins', 'dropped.ts'), "export default { name: 'dropped-in', handler: () => 'hi' };\n");
  await app.waitFor(ev('job.registered', 'dropped-in'), 'the dropped plugin', { from });

  from = app.lines.length;
  const file = path.join(dir, 'config/jobhost.json');
  const edited = JSON.parse(readFileSync(file, 'utf8')) as typeof config & { jobs: Record<string, { schedule: string }> };
  edited.jobs['cleanup-temp-files']!.schedule = '0 4 * * *';
  writeFileSync(file, JSON.stringify(edited));
  const reloaded = await app.waitFor(ev('config.reloaded'), 'config.reloaded', { from });
  t.same(reloaded['changed'], ['jobs.cleanup-temp-files']);
  await app.waitFor(unmatched, 'the unmatched glob warned again at the config edit', { from });
  const updated = await app.waitFor(ev('job.updated', 'cleanup-temp-files'), 'job.updated', { from });
  t.same(updated['changed'], ['schedule']);
  t.equal(updated['schedule'], '0 4 * * *');

  from = app.lines.length;
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'exit code 0');
  t.ok(app.lines.slice(from).some(ev('host.stopped')), 'host.stopped was logged');
});

t.test('jobhost validate: ok for the examples, non-zero with reasons for bad files and config', async (t) => {
  // A token's jobs glob that matches no plugin's job is a warning naming its path; one that matches is not.
  const operator = (jobs: string[], name: string) => ({ name, token: `${name}-token-0123456789abcdefgh`, role: 'operator', jobs });
  const good = makeProject(t, { server: { tokens: [operator(['url-*'], 'web'), operator(['daily-digest', 'deploi-*'], 'ci')] } });
  const ok = spawnSync(process.execPath, [BIN, 'validate'], { cwd: good, encoding: 'utf8', env: childEnv() });
  t.equal(ok.status, 0, ok.stdout + ok.stderr);
  t.match(ok.stdout, /ok: config and 4 plugins valid/);
  const warned = ok.stdout.split('\n').filter((l) => l.startsWith('warning'));
  t.same(warned.length, 1, warned.join('\n'));
  t.match(warned[0], /^warning\s+config\/jobhost\.json\s+JOB_NOT_FOUND\s+server\.tokens\.1\.jobs\.1: "deploi-\*" \(token "ci"\) matches no job$/);

  const bad = makeProject(t, { jobs: { ghost: { enabled: false } } });
  writeFileSync(path.join(bad, 'plugins', 'broken.ts'), 'export default { name: "broken", schedule: "61 * * * *", handler: () => 1 };\n');
  writeFileSync(path.join(bad, 'plugins', 'syntax.ts'), 'export default {\n');
  const res = spawnSync(process.execPath, [BIN, 'validate'], { cwd: bad, encoding: 'utf8', env: childEnv() });
  t.equal(res.status, 1);
  t.match(res.stdout, /plugins\/broken\.ts\s+INVALID_CRON\s+schedule: invalid cron "61 \* \* \* \*"/);
  t.match(res.stdout, /plugins\/syntax\.ts\s+PLUGIN_IMPORT_FAILED/);
  t.match(res.stdout, /warning\s+config\/jobhost\.json\s+JOB_NOT_FOUND\s+jobs\.ghost/);
  t.match(res.stdout, /2 problems found/);

  // `after` cycles, as start finds them: file by file in name order, each job against those
  // registered before it (a job refused is not one of them), with `jobs.<name>.after` applied.
  const cycles = makeProject(t, { server: { port: 0 }, jobs: { delta: { after: ['epsilon'] } } }, { examples: false });
  const plugin = (name: string, after: string[]) =>
    writeFileSync(path.join(cycles, 'plugins', `${name}.ts`), `export default { name: '${name}', after: ${JSON.stringify(after)}, handler: () => null };\n`);
  plugin('alpha', ['beta']);
  plugin('beta', ['alpha']);
  plugin('gamma', ['gamma']);
  plugin('delta', []);
  plugin('epsilon', ['delta']);
  plugin('zeta', ['beta']);
  const cyc = spawnSync(process.execPath, [BIN, 'validate'], { cwd: cycles, encoding: 'utf8', env: childEnv() });
  t.equal(cyc.status, 1, cyc.stdout + cyc.stderr);
  const refused = cyc.stdout.split('\n').filter((l) => /\bAFTER_CYCLE\b/.test(l));
  t.same(refused, [
    'error    plugins/beta.ts  AFTER_CYCLE  after: the jobs alpha → beta → alpha would trigger each other in a cycle',
    'error    plugins/epsilon.ts  AFTER_CYCLE  after: the jobs delta → epsilon → delta would trigger each other in a cycle',
    'error    plugins/gamma.ts  AFTER_CYCLE  after: the jobs gamma → gamma would trigger each other in a cycle',
  ]);
  t.match(cyc.stdout, /3 problems found/);
  const started = runCli(t, cycles, ['start']);
  await started.waitFor(ev('host.started'), 'host.started');
  t.same(
    started.lines.filter((l) => l.code === 'AFTER_CYCLE').map((l) => `error    ${String(l['file'])}  AFTER_CYCLE  ${l.msg.replace(/^plugin \S+: /, '')}`),
    refused,
    'what start refuses, file and message',
  );
  started.child.kill('SIGTERM');
  t.equal(await started.exited, 0);

  const badConfig = makeProject(t, { concurrency: 'lots' });
  const cfg = spawnSync(process.execPath, [BIN, 'validate'], { cwd: badConfig, encoding: 'utf8', env: childEnv() });
  t.equal(cfg.status, 1);
  t.match(cfg.stdout, /config\/jobhost\.json\s+CONFIG_INVALID\s+concurrency: /);
});

t.test('jobhost start refuses an invalid config with a clear message and exit code 1', async (t) => {
  const dir = makeProject(t, { jobs: { x: { schedule: 'nope' } } }, { examples: false });
  const app = runCli(t, dir, ['start']);
  t.equal(await app.exited, 1);
  t.match(app.stderr(), /cannot start: INVALID_CRON jobs\.x\.schedule: invalid cron "nope"/);
});

t.test('jobhost start on a store it cannot open: exit 1 with the code and the path, relative to the project', async (t) => {
  // A directory where the store keeps a journal; a file where it keeps its directory.
  const journal = makeProject(t, { server: { port: 0 } }, { examples: false });
  mkdirSync(path.join(journal, 'data', 'journal-1.ndjson'), { recursive: true });
  const file = makeProject(t, { server: { port: 0 } }, { examples: false });
  writeFileSync(path.join(file, 'data'), 'not a directory\n');
  const [a, b] = [runCli(t, journal, ['start']), runCli(t, file, ['start'])];
  t.same(await Promise.all([a.exited, b.exited]), [1, 1]);
  t.match(
    a.stderr(),
    /^jobhost: cannot start: STORE_OPEN_FAILED the store cannot open data\/journal-1\.ndjson: it is a directory, where the store keeps a file \(EISDIR, read\)\n$/,
  );
  t.match(
    b.stderr(),
    /^jobhost: cannot start: STORE_OPEN_FAILED the store cannot open data: it is a file, where the store keeps a directory \(EEXIST, mkdir\)\n$/,
  );
});

t.test('jobhost start reads JOBHOST_CONFIG, JOBHOST_HOST, JOBHOST_PORT, JOBHOST_TOKEN and JOBHOST_DATA_DIR', async (t) => {
  const dir = makeProject(t, { server: { port: 1 } }, { examples: false });
  // The config named by JOBHOST_CONFIG, not config/jobhost.json (whose port 1 would fail the start).
  writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ jobs: {} }));
  writeFileSync(path.join(dir, 'plugins/hello.mjs'), "export default { name: 'hello', isolation: 'inline', handler: () => 'hi' };\n");
  const token = 'env-token-0123456789';
  const app = runCli(t, dir, ['start'], {
    JOBHOST_CONFIG: 'other.json',
    JOBHOST_HOST: '127.0.0.1',
    JOBHOST_PORT: '0',
    JOBHOST_TOKEN: token,
    JOBHOST_DATA_DIR: 'elsewhere',
  });
  const started = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'the started line');
  const url = started['url'] as string;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'bound where JOBHOST_HOST and JOBHOST_PORT say');
  t.equal((await fetch(`${url}/jobs`)).status, 401, 'JOBHOST_TOKEN is required');
  const auth = { authorization: `Bearer ${token}` };
  const res = await fetch(`${url}/jobs/hello/run`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
  t.equal(res.status, 202);
  const { runId } = (await res.json()) as { runId: string };
  const run = (await (await fetch(`${url}/runs/${runId}`, { headers: auth })).json()) as { id: string };
  t.equal(run.id, runId);
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0);
  const store = path.join(dir, 'elsewhere');
  const files = readdirSync(store, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
  t.ok(
    files.some((f) => readFileSync(path.join(f.parentPath, f.name), 'utf8').includes(runId)),
    'the run is in the store under JOBHOST_DATA_DIR',
  );
  t.notOk(existsSync(path.join(dir, 'data')), 'not in the default data/');
});
