import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../../../core/contract/config.js';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { applyEnv, ConfigWatcher, configPath, readConfigFile } from '../../../core/loader/config-file.js';
import { loadPluginModule } from '../../../core/loader/plugin-module.js';
import { nextEvent, startHost, tempDir } from '../../helpers.js';

const noop = (): undefined => undefined;

t.test('config path: JOBHOST_CONFIG, else config/jobhost.json, relative to the working directory', async (t) => {
  t.same(configPath('/srv/app', {}), { file: '/srv/app/config/jobhost.json', explicit: false });
  t.same(configPath('/srv/app', { JOBHOST_CONFIG: 'etc/jh.json' }), { file: '/srv/app/etc/jh.json', explicit: true });
  t.same(configPath('/srv/app', { JOBHOST_CONFIG: '/abs/jh.json' }), { file: '/abs/jh.json', explicit: true });
});

t.test('environment overrides', async (t) => {
  const env = { JOBHOST_PORT: '4000', JOBHOST_HOST: '0.0.0.0', JOBHOST_TOKEN: 'secret-token-1', JOBHOST_DATA_DIR: '/var/lib/jobhost' };
  const c = parseConfig(applyEnv({ server: { port: 3000 }, store: { keepRuns: 5 } }, env));
  t.same(c.server, {
    host: '0.0.0.0',
    port: 4000,
    token: 'secret-token-1',
    tokens: [],
    bodyLimit: 1024 * 1024,
    allowedOrigins: [],
    allowedHosts: [],
    publicUrl: null,
  });
  t.same(c.store, { dir: '/var/lib/jobhost', keepRuns: 5, keepDays: 30, fsync: true });
  // The variable named, not server.port (a user reading that looks for it in the file).
  for (const bad of ['http', '-1', '70000', '1.5'])
    t.throws(
      () => applyEnv({}, { JOBHOST_PORT: bad }),
      { code: 'CONFIG_INVALID', message: /^JOBHOST_PORT: expected a port number from 0 to 65535/, details: { path: 'JOBHOST_PORT' } },
      bad,
    );
  t.same(applyEnv({}, {}), {});
});

t.test("JOBHOST_REDIS_URL sets backend.url and with it cluster mode, keeping the file's redis settings", async (t) => {
  const url = 'redis://10.0.0.5:6379';
  t.same(parseConfig(applyEnv({}, { JOBHOST_REDIS_URL: url })).backend, {
    kind: 'redis',
    url,
    prefix: 'jobhost',
    lockDuration: 30_000,
    stalledInterval: 30_000,
    commandTimeout: 10_000,
    streamLength: 50_000,
    waitReplicas: 0,
    waitTimeout: 1000,
  });
  t.match(parseConfig(applyEnv({ backend: { kind: 'redis', url: 'redis://old:6379', prefix: 'mine' } }, { JOBHOST_REDIS_URL: url })).backend, {
    url,
    prefix: 'mine',
  });
  t.same(parseConfig(applyEnv({ backend: { kind: 'local' } }, { JOBHOST_REDIS_URL: url })).backend.kind, 'redis');
  // A section without a kind of its own, which only the variable makes valid, keeps its settings too.
  t.match(
    parseConfig(applyEnv({ backend: { prefix: 'acc', lockDuration: '4s', stalledInterval: '2s', waitReplicas: 1 } }, { JOBHOST_REDIS_URL: url })).backend,
    {
      kind: 'redis',
      url,
      prefix: 'acc',
      lockDuration: 4000,
      stalledInterval: 2000,
      waitReplicas: 1,
    },
  );
  t.throws(() => parseConfig(applyEnv({}, { JOBHOST_REDIS_URL: 'localhost:6379' })), { code: 'CONFIG_INVALID', message: /^backend\.url: / });
  t.same(parseConfig(applyEnv({}, { JOBHOST_REDIS_URL: '' })).backend, { kind: 'local' }, 'empty: unset');
});

t.test('reading the file: defaults when missing (unless named), and errors that say what and where', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'jobhost.json');
  t.same((await readConfigFile(file, {}, { missingOk: true })).concurrency, 8);
  await t.rejects(readConfigFile(file, {}), { code: 'CONFIG_READ' });
  writeFileSync(file, '{ "concurrency": 4, ');
  await t.rejects(readConfigFile(file, {}), { code: 'CONFIG_PARSE', message: /not valid JSON/ });
  // A value typed without its quotes is often a secret: the error names the place, not the text around it.
  writeFileSync(file, '{\n  "notifications": { "destinations": { "pager": { "kind": "pagerduty",\n    "routingKey": LiteralRoutingKey777 } } }\n}\n');
  const bare = (await readConfigFile(file, {}).catch((e: unknown) => e)) as Error;
  t.match(bare, { code: 'CONFIG_PARSE', message: /not valid JSON \(Unexpected token 'L' at line 3, column 19\)$/ });
  t.notMatch(bare.message, /Literal|RoutingKey|tingKey/);
  writeFileSync(file, '{"k": LiteralRoutingKey777}');
  await t.rejects(readConfigFile(file, {}), { code: 'CONFIG_PARSE', message: /Unexpected token 'L' at line 1, column 7\)$/ }, 'near the start of the text');
  writeFileSync(file, "{ 'secret' }");
  t.notMatch(((await readConfigFile(file, {}).catch((e: unknown) => e)) as Error).message, /secret/, 'a short text is not quoted whole either');
  writeFileSync(file, '{\n  "a": 1\n  "b": 2\n}');
  await t.rejects(readConfigFile(file, {}), { code: 'CONFIG_PARSE', message: /after property value at line 3, column 3\)$/ });
  writeFileSync(file, JSON.stringify({ jobs: { nightly: { schedule: '99 * * * *' } } }));
  await t.rejects(readConfigFile(file, {}), { code: 'INVALID_CRON', message: /^jobs\.nightly\.schedule: invalid cron/ });
  writeFileSync(file, JSON.stringify({ concurrency: 3 }));
  t.equal((await readConfigFile(file, { JOBHOST_PORT: '1234' })).server.port, 1234);
  // Only a missing file means the defaults: a file saying `null` is no object, as `[]` is not.
  for (const text of ['null', '[]']) {
    writeFileSync(file, text);
    await t.rejects(
      readConfigFile(file, { JOBHOST_PORT: '1234' }, { missingOk: true }),
      { code: 'CONFIG_INVALID', message: /^\(root\): .*expected object/ },
      text,
    );
  }
});

t.test('errors name the file as it stands under the directory the host runs in, not by its absolute path', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'config'));
  const file = path.join(dir, 'config', 'jobhost.json');
  writeFileSync(file, '{ "concurrency": 4, ');
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  const err = (await readConfigFile(file, {}).catch((e: unknown) => e)) as Error;
  t.match(err, { code: 'CONFIG_PARSE', message: /^config\/jobhost\.json: not valid JSON/ });
  t.notMatch(err.message, dir);
  const missing = (await readConfigFile(path.join(dir, 'config', 'other.json'), {}).catch((e: unknown) => e)) as Error;
  t.match(missing, { code: 'CONFIG_READ', message: /^config\/other\.json: / });
  t.notMatch(missing.message, dir);
  // Outside it, the path is the only name there is.
  process.chdir(cwd);
  t.match(await readConfigFile(file, {}).catch((e: unknown) => e as Error), { message: new RegExp(`^${file.replaceAll('/', '\\/')}`) });
});

async function watched(t: Test, initial: object, env: NodeJS.ProcessEnv = {}) {
  const dir = tempDir(t);
  const file = path.join(dir, 'jobhost.json');
  // Every version of the file names the test's store dir, so only what a test edits changes.
  const withStore = (c: object): object => ({ ...c, store: { dir: path.join(dir, 'data') } });
  writeFileSync(file, JSON.stringify(withStore(initial)));
  const config = applyEnv(withStore(initial), env) as Record<string, unknown>;
  const th = await startHost(t, { start: false, config, cwd: dir, dir: path.join(dir, 'data') });
  th.host.register({ name: 'nightly', schedule: '0 3 * * *', handler: noop });
  th.host.register({ name: 'other', handler: noop });
  th.host.use(new ConfigWatcher(th.host, { file, env, debounceMs: 20 }));
  await th.host.start();
  const edit = async (next: unknown, type: 'config.reloaded' | 'config.error'): Promise<AnyHostEvent> => {
    const seen = nextEvent(th.host, (e) => e.type === 'config.reloaded' || e.type === 'config.error');
    writeFileSync(file, typeof next === 'string' ? next : JSON.stringify(withStore(next as object)));
    const e = await seen;
    t.equal(e.type, type, `edit gave ${type}`);
    return e;
  };
  return { ...th, file, edit };
}

t.test('a valid edit applies while running: schedules re-arm, enabled toggles, limits apply', async (t) => {
  const w = await watched(t, { jobs: { nightly: { schedule: '0 3 * * *' } } });
  t.equal(w.host.job('nightly')!.nextRun, '2026-01-06T03:00:00.000Z');
  const e = await w.edit({ jobs: { nightly: { schedule: '30 12 * * *' } }, concurrency: 2, queues: { default: 5, bulk: 1 } }, 'config.reloaded');
  t.match(e.data, { changed: ['concurrency', 'queues', 'jobs.nightly'], restartRequired: [], file: 'jobhost.json' });
  t.equal(w.host.job('nightly')!.nextRun, '2026-01-05T12:30:00.000Z', 're-armed');
  t.match(w.of('job.updated').at(-1)!.data, { job: 'nightly', changed: ['schedule'] });
  t.equal(w.host.config.concurrency, 2);
  t.ok('bulk' in w.host.stats().queues, 'new queue weights applied');

  await w.edit({ jobs: { nightly: { schedule: '30 12 * * *', enabled: false } } }, 'config.reloaded');
  t.equal(w.host.job('nightly')!.enabled, false);
  t.equal(w.host.job('nightly')!.nextRun, null, 'a disabled job stops firing');
  t.same(
    w.of('job.disabled').map((x) => x.data.job),
    ['nightly'],
  );
  await w.clock.advance(86_400_000);
  t.equal(w.of('run.queued').length, 0);
});

t.test('keys that need a restart are named; an override for an unknown job is not an error', async (t) => {
  const w = await watched(t, {});
  const e = await w.edit({ server: { port: 4321 }, jobs: { 'not-yet': { enabled: false } } }, 'config.reloaded');
  t.match(e.data, { changed: ['server', 'jobs.not-yet'], restartRequired: ['server'] });
  t.equal(w.host.config.server.port, 4321, 'the new value is recorded, to take effect on restart');
  // A key read once at start, inside one that applies live.
  const n = await w.edit({ server: { port: 4321 }, jobs: { 'not-yet': { enabled: false } }, notifications: { concurrency: 2 } }, 'config.reloaded');
  t.match(n.data, { changed: ['notifications'], restartRequired: ['notifications.concurrency'] });
});

t.test('an invalid edit is refused whole with config.error naming the path; the last good config stays', async (t) => {
  const w = await watched(t, { concurrency: 4, jobs: { nightly: { schedule: '0 3 * * *' } } });
  const parse = await w.edit('{ "concurrency": 1, ', 'config.error');
  t.match(parse.data, { code: 'CONFIG_PARSE', path: null });
  const schema = await w.edit({ concurrency: 1, jobs: { nightly: { schedule: '0 25 * * *' } } }, 'config.error');
  t.match(schema.data, { code: 'INVALID_CRON', path: 'jobs.nightly.schedule', message: /^jobs\.nightly\.schedule: invalid cron/ });
  const unknown = await w.edit({ concurrency: 1, colour: 'blue' }, 'config.error');
  t.match(unknown.data, { code: 'CONFIG_INVALID', path: '(root)', message: /unknown key "colour"/ });
  t.equal(w.host.config.concurrency, 4, 'nothing of the refused edits applied');
  t.equal(w.host.job('nightly')!.schedule, '0 3 * * *');
  // The last good file put back: said, so a client showing the error learns the file is good again.
  const back = await w.edit({ concurrency: 4, jobs: { nightly: { schedule: '0 3 * * *' } } }, 'config.reloaded');
  t.match(back.data, { changed: [], restartRequired: [] });
  // half-written, then finished
  const full = JSON.stringify({ concurrency: 6, jobs: { nightly: { schedule: '15 3 * * *' } }, store: { dir: path.join(path.dirname(w.file), 'data') } });
  await w.edit(full.slice(0, 20), 'config.error');
  await w.edit(full, 'config.reloaded');
  t.equal(w.host.config.concurrency, 6);
  t.equal(w.host.job('nightly')!.schedule, '15 3 * * *');
});

t.test('an edit to `null` is refused like `[]`: the overrides in force stay', async (t) => {
  const w = await watched(t, { concurrency: 4, jobs: { other: { enabled: false } } });
  // `null` twice: a save of the file itself reports a refused text again.
  for (const text of ['null', 'null', '[]']) {
    const e = await w.edit(text, 'config.error');
    t.match(e.data, { code: 'CONFIG_INVALID', path: '(root)', message: /expected object/ }, text);
  }
  t.equal(w.host.job('other')!.enabled, false, 'the disabled job stays disabled');
  t.equal(w.host.config.concurrency, 4);
});

t.test('environment overrides hold across reloads', async (t) => {
  const w = await watched(t, { server: { port: 3000 } }, { JOBHOST_PORT: '5555' });
  t.equal(w.host.config.server.port, 5555);
  const e = await w.edit({ server: { port: 3001 }, concurrency: 3 }, 'config.reloaded');
  t.match(e.data, { changed: ['concurrency'] }, 'the port did not change: the env still wins');
  t.equal(w.host.config.server.port, 5555);
});

t.test('a run-time toggle holds until the config itself changes the flag', async (t) => {
  const w = await watched(t, { jobs: { other: { enabled: true } } });
  await w.host.disable('other');
  await w.edit({ concurrency: 5, jobs: { other: { enabled: true } } }, 'config.reloaded');
  t.equal(w.host.job('other')!.enabled, false, 'an unrelated edit keeps the run-time flag');
  await w.edit({ concurrency: 5, jobs: { other: { enabled: false } } }, 'config.reloaded');
  await w.edit({ concurrency: 5, jobs: { other: { enabled: true } } }, 'config.reloaded');
  t.equal(w.host.job('other')!.enabled, true, 'an edit of the flag itself is the newest word');
});

/** A host whose config file, `file` under a temp dir, does not exist when it starts. */
async function watchedAbsent(t: Test, file: string) {
  const dir = tempDir(t);
  const store = { dir: path.join(dir, 'data') };
  const th = await startHost(t, { start: false, config: { store }, cwd: dir, dir: store.dir });
  th.host.register({ name: 'nightly', schedule: '0 3 * * *', handler: noop });
  const at = path.join(dir, file);
  th.host.use(new ConfigWatcher(th.host, { file: at, env: {}, debounceMs: 20 }));
  await th.host.start();
  const configEvent = () => nextEvent(th.host, (e) => e.type === 'config.reloaded' || e.type === 'config.error');
  const write = async (config: object | string): Promise<AnyHostEvent> => {
    const seen = configEvent();
    mkdirSync(path.dirname(at), { recursive: true });
    writeFileSync(at, typeof config === 'string' ? config : JSON.stringify({ ...config, store }));
    return seen;
  };
  return { ...th, file: at, write };
}

t.test('a file made or edited between the read the host started on and the start of the watch applies', async (t) => {
  const dir = tempDir(t);
  const store = { dir: path.join(dir, 'data') };
  const file = path.join(dir, 'jobhost.json');
  for (const [before, label] of [
    [null, 'made'],
    [JSON.stringify({ store }), 'edited'],
  ] as const) {
    const th = await startHost(t, { start: false, config: { store }, cwd: dir, dir: store.dir });
    th.host.register({ name: 'nightly', schedule: '0 3 * * *', handler: noop });
    // The host was built on `before`; the file says something else by the time the watch starts.
    writeFileSync(file, JSON.stringify({ store, jobs: { nightly: { schedule: '30 12 * * *' } } }));
    th.host.use(new ConfigWatcher(th.host, { file, env: {}, debounceMs: 20, text: before }));
    const seen = nextEvent(th.host, (e) => e.type === 'config.reloaded' || e.type === 'config.error');
    await th.host.start();
    t.match(await seen, { type: 'config.reloaded', data: { changed: ['jobs.nightly'] } }, label);
    t.equal(th.host.job('nightly')!.schedule, '30 12 * * *', label);
    await th.host.stop({ graceMs: 0 });
  }
});

t.test("a config file's folders made after the start are watched for it, and again when removed and made anew", async (t) => {
  const w = await watchedAbsent(t, 'etc/jobhost/jobhost.json');
  t.match(await w.write({ jobs: { nightly: { schedule: '30 12 * * *' } } }), {
    type: 'config.reloaded',
    data: { changed: ['jobs.nightly'], file: path.join('etc', 'jobhost', 'jobhost.json') },
  });
  t.equal(w.host.job('nightly')!.schedule, '30 12 * * *');
  // Removing the folder changes nothing (the last good config stays); a new one is watched.
  rmSync(path.dirname(w.file), { recursive: true });
  t.match(await w.write({ jobs: { nightly: { schedule: '45 6 * * *' } } }), { type: 'config.reloaded', data: { changed: ['jobs.nightly'] } });
  t.equal(w.host.job('nightly')!.schedule, '45 6 * * *');
  t.match(await w.write({ jobs: { nightly: { schedule: '15 9 * * *' } } }), { type: 'config.reloaded' }, 'and its edits');
  t.equal(w.host.job('nightly')!.schedule, '15 9 * * *');
});

t.test('a Kubernetes ConfigMap update applies: the file is a symlink through `..data`, which is swapped whole', async (t) => {
  const dir = tempDir(t);
  const configDir = path.join(dir, 'config');
  const file = path.join(configDir, 'jobhost.json');
  // kubelet's layout: a folder per version, `..data` a symlink to the current one, the file a
  // symlink through `..data`; an update renames a new `..data` over the old and removes the old folder.
  const version = (name: string, schedule: string): object => {
    const config = { jobs: { nightly: { schedule } }, store: { dir: path.join(dir, 'data') } };
    mkdirSync(path.join(configDir, name), { recursive: true });
    writeFileSync(path.join(configDir, name, 'jobhost.json'), JSON.stringify(config));
    return config;
  };
  const swap = (name: string, old: string): void => {
    symlinkSync(name, path.join(configDir, '..data_tmp'));
    renameSync(path.join(configDir, '..data_tmp'), path.join(configDir, '..data'));
    rmSync(path.join(configDir, old), { recursive: true });
  };
  const initial = version('..2026_01_05_v1', '0 3 * * *');
  symlinkSync('..2026_01_05_v1', path.join(configDir, '..data'));
  symlinkSync('..data/jobhost.json', file);
  const th = await startHost(t, { start: false, config: initial, cwd: dir, dir: path.join(dir, 'data') });
  th.host.register({ name: 'nightly', schedule: '0 3 * * *', handler: noop });
  th.host.use(new ConfigWatcher(th.host, { file, env: {}, debounceMs: 20 }));
  await th.host.start();
  const configEvent = () => nextEvent(th.host, (e) => e.type === 'config.reloaded' || e.type === 'config.error');

  // Another file of the directory changing is no edit: whenever its events are read, the text of
  // the config is the same, and nothing is emitted for it.
  writeFileSync(path.join(configDir, 'notes.txt'), 'not the config');
  version('..2026_01_05_v2', '30 12 * * *');
  let seen = configEvent();
  swap('..2026_01_05_v2', '..2026_01_05_v1');
  let e = await seen;
  t.match(e, { type: 'config.reloaded', data: { changed: ['jobs.nightly'] } });
  t.equal(th.host.job('nightly')!.schedule, '30 12 * * *');

  writeFileSync(path.join(configDir, 'notes.txt'), 'still not the config');
  version('..2026_01_05_v3', '45 6 * * *');
  seen = configEvent();
  swap('..2026_01_05_v3', '..2026_01_05_v2');
  e = await seen;
  t.match(e, { type: 'config.reloaded', data: { changed: ['jobs.nightly'] } }, 'the next config event is the swap, not the other file');
  t.equal(th.host.job('nightly')!.schedule, '45 6 * * *');

  // A refused version is reported once, not again at each change of another entry.
  version('..2026_01_05_v4', '99 * * * *');
  seen = configEvent();
  swap('..2026_01_05_v4', '..2026_01_05_v3');
  t.match(await seen, { type: 'config.error', data: { code: 'INVALID_CRON', path: 'jobs.nightly.schedule' } });
  writeFileSync(path.join(configDir, 'notes.txt'), 'the config is refused');
  version('..2026_01_05_v5', '15 9 * * *');
  seen = configEvent();
  swap('..2026_01_05_v5', '..2026_01_05_v4');
  t.match(await seen, { type: 'config.reloaded', data: { changed: ['jobs.nightly'] } });
  t.equal(th.host.job('nightly')!.schedule, '15 9 * * *');
  t.equal(th.events.filter((x) => x.type.startsWith('config.')).length, 4, 'one event per update');
});

t.test("a plugin file's import error names it under the directory the host runs in, not by its absolute path", async (t) => {
  const dir = tempDir(t);
  const plugins = path.join(dir, 'plugins');
  mkdirSync(plugins);
  const file = path.join(plugins, 'syn.ts');
  writeFileSync(file, 'export default { name: "syn", handler: () => { ;\n');
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  const err = (await loadPluginModule(file, plugins, 10_000).catch((e: unknown) => e)) as Error;
  t.match(err, { code: 'PLUGIN_IMPORT_FAILED', message: /^plugins\/syn\.ts:\d+:\d+: ERROR: / });
  t.notMatch(err.message, dir);
});

t.test('a file beside the config written all the time does not hold an edit off', async (t) => {
  const w = await watched(t, { jobs: { nightly: { schedule: '0 3 * * *' } } });
  const log = path.join(path.dirname(w.file), 'app.log');
  // Written far more often than the watcher's wait (20 ms), for as long as the edit takes.
  const writer = setInterval(() => writeFileSync(log, `${Date.now()}\n`, { flag: 'a' }), 5);
  t.teardown(() => clearInterval(writer));
  await w.edit({ jobs: { nightly: { schedule: '30 12 * * *' } } }, 'config.reloaded');
  t.equal(w.host.job('nightly')!.schedule, '30 12 * * *', 'applied while the other file was still being written');
});
