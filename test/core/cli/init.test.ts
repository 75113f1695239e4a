import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { initProject, renderExample } from '../../../core/cli/init.js';
import { parseConfig } from '../../../core/contract/config.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { startApp, validateProject } from '../../../core/loader/app.js';
import { tempDir } from '../../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');

const read = (dir: string, file: string): string => readFileSync(path.join(dir, file), 'utf8');

t.test('in an empty folder: a config, the example plugin and a package.json with the start script', async (t) => {
  const dir = tempDir(t, 'jobhost-init-');
  const result = await initProject({ cwd: dir });
  t.same(result, { created: ['config/jobhost.json', 'plugins/hello.ts', 'package.json'], kept: [], script: 'start', job: 'hello', dependencies: [] });
  const config = JSON.parse(read(dir, 'config/jobhost.json')) as unknown;
  t.doesNotThrow(() => parseConfig(config), 'the starter config passes the schema');
  t.match(config, { server: { host: '127.0.0.1', port: 3000 }, store: { dir: 'data' }, plugins: { dir: 'plugins' } });
  const pkg = JSON.parse(read(dir, 'package.json')) as Record<string, unknown>;
  t.match(pkg, { private: true, type: 'module', scripts: { start: 'jobhost start' } });
  t.match(pkg['name'], /^jobhost-init-[a-z0-9]+$/, 'named after the folder, lower-case');
  // Run from this checkout's sources on a folder of its own, the plugin imports this core.
  const spec = /from '([^']+)';\n\nexport default/.exec(read(dir, 'plugins/hello.ts'))![1]!;
  t.equal(path.resolve(dir, 'plugins', spec), path.join(ROOT, 'core', 'index.js'));
});

t.test('the project it writes validates and runs: the example job succeeds with its default params', async (t) => {
  const dir = tempDir(t, 'jobhost-init-');
  await initProject({ cwd: dir });
  // The project's zod, as after `npm install jobhost`.
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const checked = await validateProject({ cwd: dir, env: {} });
  t.same(checked.problems, []);
  t.same(checked.jobs, ['hello']);

  const app = await startApp({ cwd: dir, env: { JOBHOST_PORT: '0' }, logger: silentLogger(), signals: false });
  t.teardown(() => app.stop());
  t.equal(app.host.job('hello')?.schedule, 'every 1h');
  const { runId } = await app.host.trigger('hello');
  t.match(await app.host.wait(runId), { status: 'succeeded', result: { greeting: 'hello, world' }, progress: { fraction: 0.5, text: 'greeting world' } });
  t.equal((await fetch(`${app.url}/health`)).status, 200);
});

t.test('keeps what is there: a second run writes nothing, an own start script stays', async (t) => {
  const dir = tempDir(t, 'jobhost-init-');
  mkdirSync(path.join(dir, 'config'));
  writeFileSync(path.join(dir, 'config/jobhost.json'), '{ "concurrency": 2 }\n');
  writeFileSync(path.join(dir, 'package.json'), '{\n    "name": "mine",\n    "scripts": { "start": "node server.js" }\n}\n');
  const first = await initProject({ cwd: dir });
  t.same(first, { created: ['plugins/hello.ts'], kept: ['config/jobhost.json'], script: 'jobhost', job: 'hello', dependencies: [] });
  t.equal(read(dir, 'config/jobhost.json'), '{ "concurrency": 2 }\n', 'the config is left alone');
  t.equal(
    read(dir, 'package.json'),
    '{\n    "name": "mine",\n    "scripts": {\n        "start": "node server.js",\n        "jobhost": "jobhost start"\n    }\n}\n',
    "the start script stays; ours goes beside it, in the file's indentation",
  );

  writeFileSync(path.join(dir, 'plugins/hello.ts'), '// mine\n');
  const second = await initProject({ cwd: dir });
  t.same(second, { created: [], kept: ['config/jobhost.json', 'plugins/hello.ts', 'package.json'], script: null, job: 'hello', dependencies: [] });
  t.equal(read(dir, 'plugins/hello.ts'), '// mine\n', 'an edited example is not overwritten');
});

t.test('a package.json that is not a JSON object stops init before it writes anything', async (t) => {
  for (const [text, message] of [
    ['{ "name": ', /^package\.json is not valid JSON \(.+\); fix it, then run jobhost init again$/],
    ['[]', 'package.json is not a JSON object'],
    ['{ "scripts": "start" }', 'package.json "scripts" is not an object'],
  ] as const) {
    const dir = tempDir(t, 'jobhost-init-');
    writeFileSync(path.join(dir, 'package.json'), text);
    await t.rejects(initProject({ cwd: dir }), { name: 'InitError', code: 'INVALID_PACKAGE_JSON', message }, text);
    t.notOk(existsSync(path.join(dir, 'config')), 'no config written');
    t.notOk(existsSync(path.join(dir, 'plugins')), 'no plugin written');
    t.equal(read(dir, 'package.json'), text, 'package.json untouched');
  }
});

t.test('the example imports jobhost where the project has it installed, and core/ in a clone', async (t) => {
  const installed = tempDir(t, 'jobhost-init-');
  mkdirSync(path.join(installed, 'node_modules', 'jobhost'), { recursive: true });
  writeFileSync(path.join(installed, 'node_modules', 'jobhost', 'package.json'), '{ "name": "jobhost" }');
  writeFileSync(path.join(installed, 'package.json'), '{ "name": "x", "devDependencies": { "zod": "^4.3.0" } }');
  const result = await initProject({ cwd: installed });
  t.match(read(installed, 'plugins/hello.ts'), "import { definePlugin } from 'jobhost';");
  // Importing jobhost by name, the project needs it in package.json; the zod it has stays as it is.
  t.same(result.dependencies, ['jobhost']);
  t.match(JSON.parse(read(installed, 'package.json')), { dependencies: { jobhost: /^\^\d+\.\d+\.\d+$/ }, devDependencies: { zod: '^4.3.0' } });
  t.notOk((JSON.parse(read(installed, 'package.json')) as { dependencies: Record<string, string> }).dependencies['zod'], 'zod not added twice');

  const clone = tempDir(t, 'jobhost-init-');
  symlinkSync(path.join(ROOT, 'core'), path.join(clone, 'core'));
  t.same((await initProject({ cwd: clone })).dependencies, [], 'a clone loads its own core: no dependency to add');
  t.match(read(clone, 'plugins/hello.ts'), "import { definePlugin } from '../core/index.js';");
  t.match(renderExample('jobhost'), /name: 'hello',[\s\S]*schedule: \{ every: '1h' \}/);
});
