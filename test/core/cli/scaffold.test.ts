import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { coreImport, pluginImport, renderPlugin, scaffoldPlugin } from '../../../core/cli/scaffold.js';
import { tempDir } from '../../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');

/** A project with core/ at its root, like a clone. */
function project(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t, 'jobhost-new-');
  symlinkSync(path.join(ROOT, 'core'), path.join(dir, 'core'));
  return dir;
}

t.test('writes plugins/<name>.ts importing ../core/index.js, with the name and a zod params schema', async (t) => {
  const cwd = project(t);
  const file = await scaffoldPlugin({ name: 'sync-invoices', cwd });
  t.equal(file, path.join(cwd, 'plugins', 'sync-invoices.ts'));
  const text = readFileSync(file, 'utf8');
  t.match(text, "import { definePlugin } from '../core/index.js';");
  t.match(text, "import { z } from 'zod';");
  t.match(text, "name: 'sync-invoices',");
  t.match(text, /params: z\.object\(/);
  t.match(text, /ctx\.progress\(/);
  t.match(text, /ctx\.log\.info\(/);
  t.match(text, "// schedule: '0 * * * *',", 'no schedule: trigger-only, with a hint');
});

t.test('a schedule (cron or every), another directory, --force', async (t) => {
  const cwd = project(t);
  const cron = await scaffoldPlugin({ name: 'nightly', cwd, schedule: ' 0 2 * * * ', dir: 'src/jobs' });
  const text = readFileSync(cron, 'utf8');
  t.match(text, "  schedule: '0 2 * * *',");
  t.match(text, "from '../../core/index.js'", 'the import follows the directory');
  const every = await scaffoldPlugin({ name: 'poll', cwd, schedule: 'every 15m' });
  t.match(readFileSync(every, 'utf8'), "  schedule: { every: '15m' },");

  writeFileSync(every, 'mine');
  await t.rejects(scaffoldPlugin({ name: 'poll', cwd }), { code: 'FILE_EXISTS', message: 'plugins/poll.ts already exists (use --force to overwrite it)' });
  t.equal(readFileSync(every, 'utf8'), 'mine', 'left alone');
  await scaffoldPlugin({ name: 'poll', cwd, force: true });
  t.match(readFileSync(every, 'utf8'), 'definePlugin');
});

t.test('refuses bad names and schedules, and a .js twin, before writing anything', async (t) => {
  const cwd = project(t);
  for (const name of ['Bad_Name', 'CamelCase', '-leading', 'trailing-', 'a--b', 'has space', '../escape', 'x'.repeat(101), '']) {
    await t.rejects(scaffoldPlugin({ name, cwd }), { code: 'INVALID_NAME', message: /is not a job name: use kebab-case/ }, JSON.stringify(name));
  }
  await t.rejects(scaffoldPlugin({ name: 'ok-name', cwd, schedule: '61 * * * *' }), {
    code: 'INVALID_CRON',
    message: /^--schedule: invalid cron "61 \* \* \* \*"/,
  });
  await t.rejects(scaffoldPlugin({ name: 'ok-name', cwd, schedule: 'every soon' }), { code: 'INVALID_CRON', message: /^--schedule: .*invalid duration/ });
  mkdirSync(path.join(cwd, 'plugins'));
  writeFileSync(path.join(cwd, 'plugins', 'twin.mjs'), 'export default {}');
  await t.rejects(scaffoldPlugin({ name: 'twin', cwd, force: true }), {
    code: 'FILE_EXISTS',
    message: 'plugins/twin.mjs already exists: a plugin file named twin is there',
  });
});

t.test('outside a clone, the import points at this jobhost core', async (t) => {
  const cwd = tempDir(t, 'jobhost-new-bare-');
  const file = await scaffoldPlugin({ name: 'bare', cwd });
  const spec = /from '([^']+)'/.exec(
    readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.includes('definePlugin }'))!,
  )![1]!;
  t.equal(path.resolve(path.dirname(file), spec), path.join(ROOT, 'core', 'index.js'));
  t.equal(coreImport('/p/plugins', '/p/plugins/core'), './core/index.js', 'a path that does not start with a dot gets ./');
  t.match(renderPlugin('x', '../core/index.js', undefined), 'jobhost run x --wait');
  t.match(renderPlugin('x', '../core/index.js', "it's\\"), "schedule: 'it\\'s\\\\',", 'quotes and backslashes escaped');
});

t.test("where jobhost is installed (or this is the built package), the import is 'jobhost'", async (t) => {
  const cwd = tempDir(t, 'jobhost-new-installed-');
  mkdirSync(path.join(cwd, 'node_modules', 'jobhost'), { recursive: true });
  writeFileSync(path.join(cwd, 'node_modules', 'jobhost', 'package.json'), '{ "name": "jobhost" }');
  const file = await scaffoldPlugin({ name: 'sync-invoices', cwd, dir: 'src/jobs' });
  t.match(readFileSync(file, 'utf8'), "import { definePlugin } from 'jobhost';", 'found from a folder below');

  const bare = tempDir(t, 'jobhost-new-bare-');
  t.equal(pluginImport(bare, path.join(bare, 'plugins'), true), 'jobhost', 'the built package, in a folder without node_modules');
  t.not(pluginImport(bare, path.join(bare, 'plugins'), false), 'jobhost', 'the sources, in the same folder');
  const clone = project(t);
  t.equal(pluginImport(clone, path.join(clone, 'plugins'), true), '../core/index.js', 'a clone keeps its relative import, built or not');
});
