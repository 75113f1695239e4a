import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { ERROR_CODES } from '../core/contract/errors.js';
import { startHost, tempDir } from './helpers.js';

const root = path.resolve(import.meta.dirname, '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

t.test('every error code is documented in the README', async (t) => {
  for (const code of Object.keys(ERROR_CODES)) t.match(readme, `\`${code}\``, code);
});

t.test("the README's example plugin, pasted into a script, runs and succeeds", async (t) => {
  const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes("name: 'cleanup-temp-files'"));
  t.ok(block, 'the README has an example plugin');
  const dir = tempDir(t);
  // Pasted next to the project's modules, as a plugin file would be.
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
  mkdirSync(path.join(dir, 'plugins'));
  const file = path.join(dir, 'plugins', 'example.ts');
  writeFileSync(file, block!.replace("from 'jobhost'", `from ${JSON.stringify(pathToFileURL(path.join(root, 'core/index.ts')).href)}`));
  const plugin = ((await import(pathToFileURL(file).href)) as { default: unknown }).default;

  const { host, of } = await startHost(t);
  host.register(plugin, { file });
  const { runId } = await host.trigger('cleanup-temp-files', { params: { dir: '/var/tmp' } });
  const run = await host.wait(runId);
  t.match(run, { status: 'succeeded', result: { count: 3 }, params: { dir: '/var/tmp' }, progress: { fraction: 0.5, text: 'scanned' } });
  t.match(of('notification')[0]!.data, { title: 'Temp files cleaned', message: 'Removed 3 files', priority: 'medium', tags: ['maintenance'] });
  t.equal(host.job('cleanup-temp-files')!.schedule, '0 */6 * * *');
});

t.test("the README opens with a contents list that links every section, in order, before 'Use it in your project'", async (t) => {
  const anchor = (h: string): string =>
    h
      .trim()
      .toLowerCase()
      .replace(/[^\w\- ]/g, '')
      .replaceAll(' ', '-');
  const sections = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]!).filter((h) => h !== 'Contents');
  const contents = /^## Contents\n\n(.+)\n/m.exec(readme)?.[1] ?? '';
  const links = [...contents.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
  t.same(links, sections.map(anchor), 'one link per section, in order');
  t.ok(readme.indexOf('## Contents') < readme.indexOf('## Use it in your project'), 'before the first section');
  t.equal(sections[0], 'Use it in your project', '"Use it in your project" stays first');
});
