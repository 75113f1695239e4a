import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { isPluginFile, type PluginLoader, usePluginDirectory } from '../../../core/loader/plugin-directory.js';
import { captureLogger, gate, nextEvent, startHost, type TestHost, tempDir, until } from '../../helpers.js';

const core = pathToFileURL(path.resolve(import.meta.dirname, '../../../core/index.ts')).href;

/** A plugin file's source: a job named `name` whose handler returns `result`. */
const plugin = (name: string, result: string, extra = ''): string =>
  `import { definePlugin } from '${core}';\nexport default definePlugin({ name: '${name}', ${extra} handler: () => ${JSON.stringify(result)} });\n`;

async function setup(
  t: Test,
  files: Record<string, string> = {},
  options: { importTimeoutMs?: number } = {},
): Promise<TestHost & { dir: string; loader: PluginLoader }> {
  const dir = tempDir(t);
  // As in a project: plugin files are ES modules.
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), body);
  }
  const th = await startHost(t, { start: false, cwd: dir });
  const loader = usePluginDirectory(th.host, { dir, watch: true, importTimeoutMs: options.importTimeoutMs ?? 5000, debounceMs: 30, rescanMs: 0 });
  await th.host.start();
  return { ...th, dir, loader };
}

const resultOf = async (th: TestHost, job: string): Promise<unknown> => (await th.host.wait((await th.host.trigger(job)).runId)).result;
const isType = (type: string, job?: string) => (e: AnyHostEvent) => e.type === type && (job === undefined || e.data.job === job);

t.test('which files are plugins', async (t) => {
  for (const yes of ['a.ts', 'b.js', 'c.mjs', 'cleanup-temp-files.ts']) t.ok(isPluginFile(yes), yes);
  for (const no of [
    '.hidden.ts',
    'types.d.ts',
    'a.test.ts',
    'a.spec.js',
    'a.ts~',
    'a.ts.swp',
    '.a.ts.swp',
    'a.ts.tmp',
    'notes.md',
    'x.json',
    '#a.ts#',
    'a.cjs',
  ])
    t.notOk(isPluginFile(no), no);
});

t.test('loads .ts, .js and .mjs files on start and ignores the rest', async (t) => {
  const th = await setup(t, {
    'one.ts': plugin('one', 'ts'),
    'two.js': `export default { name: 'two', handler: () => 'js' };\n`,
    'three.mjs': `export default { name: 'three', handler: () => 'mjs' };\n`,
    '.hidden.ts': plugin('hidden', 'x'),
    'types.d.ts': 'export type X = 1;\n',
    'one.test.ts': plugin('test-file', 'x'),
    'one.ts~': plugin('backup', 'x'),
    'lib/helper.ts': plugin('helper', 'x'),
  });
  t.same(
    th.host.jobs().map((j) => j.name),
    ['one', 'three', 'two'],
  );
  t.equal(th.host.job('one')!.file, 'one.ts');
  t.equal(await resultOf(th, 'one'), 'ts');
  t.equal(await resultOf(th, 'two'), 'js');
  t.equal(await resultOf(th, 'three'), 'mjs');
  t.equal(th.of('plugin.error').length, 0);
});

t.test('a new file registers, an edit reloads for real, a delete removes', async (t) => {
  const th = await setup(t);
  const file = path.join(th.dir, 'hello.ts');
  let seen = nextEvent(th.host, isType('job.registered', 'hello'));
  writeFileSync(file, plugin('hello', 'v1'));
  await seen;
  t.equal(await resultOf(th, 'hello'), 'v1');
  seen = nextEvent(th.host, isType('job.updated', 'hello'));
  writeFileSync(file, plugin('hello', 'v2'));
  await seen;
  t.equal(await resultOf(th, 'hello'), 'v2', 'the edited code runs, not a cached module');
  seen = nextEvent(th.host, isType('job.removed', 'hello'));
  rmSync(file);
  await seen;
  t.equal(th.host.job('hello'), undefined);
});

t.test('helper modules inside the plugins folder reload with the plugin', async (t) => {
  const th = await setup(t, {
    'uses-helper.ts': `import { greet } from './lib/greet.js';\nexport default { name: 'uses-helper', handler: () => greet() };\n`,
    'lib/greet.ts': `export const greet = (): string => 'hello v1';\n`,
  });
  t.equal(await resultOf(th, 'uses-helper'), 'hello v1');
  const seen = nextEvent(th.host, isType('job.updated', 'uses-helper'));
  writeFileSync(path.join(th.dir, 'lib/greet.ts'), `export const greet = (): string => 'hello v2';\n`);
  await seen;
  t.equal(await resultOf(th, 'uses-helper'), 'hello v2');
});

t.test('a deleted file lets its in-flight run finish', async (t) => {
  const th = await setup(t, {
    'slow.ts': `export default { name: 'slow', handler: (ctx: { signal: AbortSignal }) => new Promise((r) => setTimeout(() => r('finished'), 300)) };\n`,
  });
  const { runId } = await th.host.trigger('slow');
  const removed = nextEvent(th.host, isType('job.removed', 'slow'));
  rmSync(path.join(th.dir, 'slow.ts'));
  await removed;
  const run = await th.host.wait(runId);
  t.equal(run.status, 'succeeded');
  t.equal(run.result, 'finished');
});

t.test('save by rename, bursts of saves and half-written files settle in the right state', async (t) => {
  const th = await setup(t, { 'edit.ts': plugin('edit', 'v0') });
  const file = path.join(th.dir, 'edit.ts');
  // an editor that writes a temp file and renames it over the original
  let seen = nextEvent(th.host, isType('job.updated', 'edit'));
  writeFileSync(path.join(th.dir, '.edit.ts.tmp'), plugin('edit', 'renamed'));
  renameSync(path.join(th.dir, '.edit.ts.tmp'), file);
  await seen;
  t.equal(await resultOf(th, 'edit'), 'renamed');
  // ten quick saves: the last one wins
  seen = nextEvent(th.host, (e) => e.type === 'job.updated' && e.data.job === 'edit');
  for (let i = 1; i <= 10; i++) writeFileSync(file, plugin('edit', `burst ${i}`));
  await seen;
  await th.loader.idle();
  t.equal(await resultOf(th, 'edit'), 'burst 10');
  // a half-written file: an error, the last good version keeps running, the finished write wins
  const full = plugin('edit', 'complete');
  const errored = nextEvent(th.host, isType('plugin.error'));
  writeFileSync(file, full.slice(0, full.length / 2));
  await errored;
  t.equal(await resultOf(th, 'edit'), 'burst 10');
  seen = nextEvent(th.host, isType('job.updated', 'edit'));
  writeFileSync(file, full);
  await seen;
  t.equal(await resultOf(th, 'edit'), 'complete');
});

t.test('bad files emit plugin.error with file, code and message; every other job keeps running', async (t) => {
  const th = await setup(t, { 'good.ts': plugin('good', 'fine') });
  const cases: Array<[string, string, string, RegExp]> = [
    ['syntax.ts', 'export default { name: "syntax", handler: () => { ;\n', 'PLUGIN_IMPORT_FAILED', /Expected|Unexpected/],
    ['throws.ts', 'throw new Error("broken at import");\nexport default {};\n', 'PLUGIN_IMPORT_FAILED', /broken at import/],
    ['schema.ts', 'export default { name: "Bad Name", handler: () => 1 };\n', 'PLUGIN_INVALID', /^name: expected a kebab-case name/],
    ['no-export.ts', 'export const x = 1;\n', 'PLUGIN_NO_EXPORT', /no default export/],
    ['cron.ts', plugin('bad-cron', 'x', "schedule: '61 * * * *',"), 'INVALID_CRON', /^schedule: invalid cron "61 \* \* \* \*"/],
    ['zone.ts', plugin('bad-zone', 'x', "schedule: '0 * * * *', timezone: 'Mars/Olympus',"), 'INVALID_TIMEZONE', /Mars\/Olympus/],
    ['dupe.ts', plugin('good', 'impostor'), 'PLUGIN_DUPLICATE', /already defined in good\.ts; dupe\.ts declares it too/],
    [
      'missing-helper.ts',
      "import { x } from './nope.js';\nexport default { name: 'missing-helper', handler: () => x };\n",
      'PLUGIN_IMPORT_FAILED',
      /cannot find module "\.\/nope\.js"/,
    ],
    [
      'missing-package.mjs',
      "import x from 'no-such-package';\nawait 0;\nexport default { name: 'missing-package', handler: () => x };\n",
      'PLUGIN_IMPORT_FAILED',
      /cannot find module "no-such-package" imported from missing-package\.mjs/,
    ],
    ['tla-syntax.mjs', 'await 0;\nexport default { name: "tla-syntax", handler: () => { ;\n', 'PLUGIN_IMPORT_FAILED', /Expected|Unexpected/],
    [
      // A file outside the project (jobhost's own install, a symlink's target): no server path in the message.
      'outside.ts',
      `import { x } from '${path.join(tmpdir(), 'jobhost-nowhere', 'does-not-exist.js')}';\nexport default { name: 'outside', handler: () => x };\n`,
      'PLUGIN_IMPORT_FAILED',
      /^(?![\s\S]*jobhost-nowhere\/)[\s\S]*…\/does-not-exist\.js/s,
    ],
    [
      // Inside a package: which package stays.
      'outside-pkg.ts',
      `import { x } from '${path.join(tmpdir(), 'jobhost-nowhere', 'node_modules', 'fake-pkg', 'gone.js')}';\nexport default { name: 'outside-pkg', handler: () => x };\n`,
      'PLUGIN_IMPORT_FAILED',
      /^(?![\s\S]*jobhost-nowhere\/)[\s\S]*…\/node_modules\/fake-pkg\/gone\.js/s,
    ],
  ];
  for (const [name, body, code, message] of cases) {
    const seen = nextEvent(th.host, (e) => e.type === 'plugin.error' && e.data.file === name);
    writeFileSync(path.join(th.dir, name), body);
    const e = (await seen) as Extract<AnyHostEvent, { type: 'plugin.error' }>;
    t.equal(e.data.code, code, name);
    t.match(e.data.message, message, name);
    // the job the file declares is named even when its definition fails
    if (name === 'cron.ts' || name === 'zone.ts') t.equal(e.data.job, name === 'cron.ts' ? 'bad-cron' : 'bad-zone', name);
    if (name === 'dupe.ts') t.equal(e.data.job, 'good', name);
  }
  t.same(
    th.host.jobs().map((j) => j.name),
    ['good'],
  );
  t.equal(await resultOf(th, 'good'), 'fine', 'the good job still runs');
  t.equal(th.host.state, 'running');
  // the duplicate gets its turn once the original file goes away
  const registered = nextEvent(th.host, (e) => e.type === 'job.registered' && e.data.job === 'good');
  rmSync(path.join(th.dir, 'good.ts'));
  await registered;
  t.equal(th.host.job('good')!.file, 'dupe.ts');
  t.equal(await resultOf(th, 'good'), 'impostor');
});

t.test('a file that never finishes importing is cut off at importTimeoutMs with PLUGIN_IMPORT_TIMEOUT', async (t) => {
  // Its own loader: the short limit applies to this file only, not to the imports of other tests.
  const th = await setup(t, {}, { importTimeoutMs: 300 });
  const seen = nextEvent(th.host, (e) => e.type === 'plugin.error' && e.data.file === 'hangs.ts');
  writeFileSync(path.join(th.dir, 'hangs.ts'), 'await new Promise(() => {});\nexport default { name: "hangs", handler: () => 1 };\n');
  const e = (await seen) as Extract<AnyHostEvent, { type: 'plugin.error' }>;
  t.equal(e.data.code, 'PLUGIN_IMPORT_TIMEOUT');
  t.match(e.data.message, /did not finish within 300ms/);
  t.same(th.host.jobs(), []);
  t.equal(th.host.state, 'running');
});

t.test('a file whose code loops for ever as it loads is stopped at importTimeoutMs: the host goes on (its timers fire, other files load)', async (t) => {
  const th = await setup(t, { 'good.ts': `export default { name: 'good', handler: () => 'fine' };\n` }, { importTimeoutMs: 1500 });
  const seen = nextEvent(th.host, (e) => e.type === 'plugin.error' && e.data.file === 'spins.ts');
  // A helper the plugin imports spins too: the bound holds for every file of the plugin.
  writeFileSync(path.join(th.dir, 'spin-helper.ts'), 'for (;;) {}\nexport const never = 1;\n');
  writeFileSync(path.join(th.dir, 'spins.ts'), 'import { never } from "./spin-helper.ts";\nexport default { name: "spins", handler: () => never };\n');
  const e = (await seen) as Extract<AnyHostEvent, { type: 'plugin.error' }>;
  t.equal(e.data.code, 'PLUGIN_IMPORT_TIMEOUT');
  t.match(e.data.message, /did not finish within 1500ms/);
  t.equal(await resultOf(th, 'good'), 'fine', 'the other job still runs');
  t.equal(th.host.state, 'running');
});

t.test('only the load is bounded: a require the plugin makes later, past the import timeout, runs as any code does', async (t) => {
  const th = await setup(
    t,
    {
      // 30 ms of work when required: far over what is left of the load's bound once the load is over.
      'slow-helper.cjs': 'const end = Date.now() + 30; while (Date.now() < end) {}\nexports.value = "loaded late";\n',
      'lazy.js': "export default { name: 'lazy', isolation: 'inline', handler: () => require('./slow-helper.cjs').value };\n",
    },
    { importTimeoutMs: 400 },
  );
  await until(() => th.host.job('lazy') !== undefined, 5000, 'lazy loaded');
  await new Promise((r) => setTimeout(r, 450)); // past the load's deadline: what is asserted is that it no longer applies
  t.equal(await resultOf(th, 'lazy'), 'loaded late');
});

/**
 * A plugin file whose import the test holds: its top-level code reports that it started (the load
 * is in flight) and awaits `release` (never, when null). Top-level await: a native ES module
 * evaluated in this process, so it reaches the test through `globalThis`.
 */
function heldImport(t: Test, key: string, job: string, result: string, release: Promise<void> | null): { text: string; started: () => boolean } {
  let started = false;
  const g = globalThis as Record<string, unknown>;
  g[key] = { started: () => (started = true), release: release ?? new Promise(() => {}) };
  t.teardown(() => delete g[key]);
  const text = `globalThis.${key}.started();\nawait globalThis.${key}.release;\nexport default { name: '${job}', handler: () => ${JSON.stringify(result)} };\n`;
  return { text, started: () => started };
}

t.test('an import that never finishes holds only its own file; a newer save of that file applies at once', async (t) => {
  // The timeout is far off: what applies below applies while the stuck import is still in flight.
  const th = await setup(t, { 'a.mjs': `export default { name: 'a', handler: () => 'v1' };\n` }, { importTimeoutMs: 60_000 });
  const stuck = heldImport(t, '__jobhostTestStuck', 'hangs', 'never', null);
  writeFileSync(path.join(th.dir, 'hangs.mjs'), stuck.text);
  await until(stuck.started, 5000, 'the stuck import to start');
  const updated = nextEvent(th.host, isType('job.updated', 'a'));
  const registered = nextEvent(th.host, isType('job.registered', 'b'));
  writeFileSync(path.join(th.dir, 'a.mjs'), `export default { name: 'a', handler: () => 'v2' };\n`);
  writeFileSync(path.join(th.dir, 'b.mjs'), `export default { name: 'b', handler: () => 'b' };\n`);
  await updated;
  await registered;
  t.equal(await resultOf(th, 'a'), 'v2', 'an edit of another file applied');
  t.equal(await resultOf(th, 'b'), 'b', 'a new file registered');
  // The stuck file's next save is not queued behind its own stuck import either.
  const fixed = nextEvent(th.host, isType('job.registered', 'hangs'));
  writeFileSync(path.join(th.dir, 'hangs.mjs'), `export default { name: 'hangs', handler: () => 'fixed' };\n`);
  await fixed;
  t.equal(await resultOf(th, 'hangs'), 'fixed');
  t.same(th.of('plugin.error'), [], 'no error: the stuck import is superseded, not failed');
});

t.test("edits of one file apply in order: a slow older load that ends last is dropped; so is one the file's removal overtook", async (t) => {
  const th = await setup(t, { 'slow.mjs': plugin('slow', 'v1') });
  const file = path.join(th.dir, 'slow.mjs');
  const release2 = gate();
  const v2 = heldImport(t, '__jobhostTestSlow2', 'slow', 'v2', release2.promise);
  writeFileSync(file, v2.text);
  await until(v2.started, 5000, 'the v2 import to start');
  const updated = nextEvent(th.host, isType('job.updated', 'slow'));
  writeFileSync(file, plugin('slow', 'v3'));
  await updated;
  t.equal(await resultOf(th, 'slow'), 'v3', 'the newer save applied while the older load was in flight');
  release2.open();
  await th.loader.idle();
  t.equal(await resultOf(th, 'slow'), 'v3', 'the older load ended last and applied nothing');
  t.equal(th.of('job.updated').length, 1);
  // A removal while a load is in flight: the load ends after it and registers nothing.
  const release4 = gate();
  const v4 = heldImport(t, '__jobhostTestSlow4', 'slow', 'v4', release4.promise);
  writeFileSync(file, v4.text);
  await until(v4.started, 5000, 'the v4 import to start');
  const removed = nextEvent(th.host, isType('job.removed', 'slow'));
  rmSync(file);
  await removed;
  release4.open();
  await th.loader.idle();
  t.equal(th.host.job('slow'), undefined, 'the removed file stays removed');
  t.equal(th.of('job.registered').filter((e) => e.data.job === 'slow').length, 1, 'registered once, at start');
  t.same(th.of('plugin.error'), []);
});

t.test('an edit that breaks a loaded plugin keeps the last good version; fixing the file recovers it', async (t) => {
  const th = await setup(t, { 'job.ts': plugin('job', 'good v1', "schedule: '0 * * * *',") });
  const file = path.join(th.dir, 'job.ts');
  const errored = nextEvent(th.host, isType('plugin.error'));
  writeFileSync(file, plugin('job', 'bad', "schedule: 'every tuesday',"));
  const e = (await errored) as Extract<AnyHostEvent, { type: 'plugin.error' }>;
  t.match(e.data, { job: 'job', file: 'job.ts', code: 'INVALID_CRON' });
  t.equal(await resultOf(th, 'job'), 'good v1');
  t.equal(th.host.job('job')!.schedule, '0 * * * *');
  const fixed = nextEvent(th.host, isType('job.updated', 'job'));
  writeFileSync(file, plugin('job', 'good v2', "schedule: '30 * * * *',"));
  await fixed;
  t.equal(await resultOf(th, 'job'), 'good v2');
  t.equal(th.host.job('job')!.schedule, '30 * * * *');
});

t.test('a file that changes its job name swaps the jobs', async (t) => {
  const th = await setup(t, { 'f.ts': plugin('first-name', 'a') });
  const removed = nextEvent(th.host, isType('job.removed', 'first-name'));
  writeFileSync(path.join(th.dir, 'f.ts'), plugin('second-name', 'b'));
  await removed;
  t.same(
    th.host.jobs().map((j) => j.name),
    ['second-name'],
  );
});

t.test('rescans catch changes that no watch event announced', async (t) => {
  const dir = tempDir(t);
  const th = await startHost(t, { start: false, cwd: dir });
  const loader = usePluginDirectory(th.host, { dir, watch: false, importTimeoutMs: 5000 });
  await th.host.start();
  t.same(th.host.jobs(), []);
  writeFileSync(path.join(dir, 'late.ts'), plugin('late', 'x'));
  t.same(th.host.jobs(), [], 'no watcher: nothing yet');
  await (loader as unknown as { start(): Promise<void> }).start();
  t.same(
    th.host.jobs().map((j) => j.name),
    ['late'],
  );
});

t.test('a plugins directory not made yet is told once, not at every rescan; its files load once it is made', async (t) => {
  const root = tempDir(t);
  const dir = path.join(root, 'plugins');
  const log = captureLogger();
  const th = await startHost(t, { start: false, cwd: root, logger: log.logger });
  usePluginDirectory(th.host, { dir, watch: true, importTimeoutMs: 5000, debounceMs: 30, rescanMs: 20 });
  await th.host.start();
  // About ten rescans while it is missing.
  await new Promise((r) => setTimeout(r, 250));
  const told = log.lines.filter((l) => l['dir'] !== undefined && (l['level'] as number) >= 40);
  t.equal(told.length, 1, 'one line');
  t.match(told[0], { level: 40, dir: 'plugins' }, 'a warning, not an error');
  mkdirSync(dir);
  writeFileSync(path.join(root, 'package.json'), '{ "type": "module" }');
  const registered = nextEvent(th.host, isType('job.registered', 'late'));
  writeFileSync(path.join(dir, 'late.mjs'), "export default { name: 'late', handler: () => 'here' };\n");
  await registered;
  t.equal(await resultOf(th, 'late'), 'here');
});
