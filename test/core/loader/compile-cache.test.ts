import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import t from 'tap';
import { CompileCache, compileCacheFor, compileKey } from '../../../core/loader/compile-cache.js';
import { loadPluginModule } from '../../../core/loader/plugin-module.js';
import { tempDir, until } from '../../helpers.js';

/**
 * A plugin's compiled code is kept in the project's node_modules/.cache between starts: a start
 * whose plugins did not change reads it back and never loads esbuild. CommonJS esbuild shows in
 * the require cache once loaded, so this file tells whether a load compiled.
 */

const esbuildLoaded = (): boolean => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/node_modules/esbuild/'));

const plugin = (name: string): string => `export default { name: ${JSON.stringify(name)}, handler: (): string => 'ran' };\n`;

t.test('a plugin unchanged since its last compile is read from the cache, without esbuild; an edit compiles again', async (t) => {
  const project = tempDir(t);
  mkdirSync(path.join(project, 'node_modules'));
  const plugins = path.join(project, 'plugins');
  mkdirSync(plugins);
  const file = path.join(plugins, 'greet.ts');
  writeFileSync(file, plugin('greet'));

  const cache = compileCacheFor(plugins);
  t.equal(cache?.dir, path.join(project, 'node_modules', '.cache', 'jobhost', 'plugins'), "the cache is in the project's node_modules");
  t.notOk(esbuildLoaded(), 'esbuild is not loaded by the loader modules');

  // What a first start would have kept, made by hand so that reading it back shows.
  await cache!.put(compileKey(file, 'ts', plugin('greet')), `module.exports = { __esModule: true, default: { name: 'kept', handler: () => 'kept' } };`);
  const kept = await loadPluginModule(file, plugins, 5000);
  t.equal((kept.exports['default'] as { name: string }).name, 'kept', 'the kept code is what loaded');
  t.notOk(esbuildLoaded(), 'and esbuild was not loaded for it');

  writeFileSync(file, plugin('greeted'));
  const edited = await loadPluginModule(file, plugins, 5000);
  t.equal((edited.exports['default'] as { name: string }).name, 'greeted', 'an edited file is compiled');
  t.ok(esbuildLoaded(), 'by esbuild');
  const entry = path.join(cache!.dir, `${compileKey(file, 'ts', plugin('greeted'))}.js`);
  await until(() => existsSync(entry), 5000, 'the compiled code to be kept');
  t.equal(readFileSync(entry, 'utf8'), edited.source.modules[0]!.code, 'the cache keeps exactly the code that ran');

  const again = await loadPluginModule(file, plugins, 5000);
  t.equal(again.source.modules[0]!.code, edited.source.modules[0]!.code, 'a later load reads the same code back');
  t.equal(readdirSync(cache!.dir).filter((n) => n.endsWith('.tmp')).length, 0, 'no temp file is left');
});

t.test('no node_modules above the plugins, or a cache that cannot be written: plugins compile as before', async (t) => {
  const bare = tempDir(t);
  // The temp dir's parents have no node_modules on the machines this runs on; say so if one does.
  const parents = [];
  for (let d = bare; path.dirname(d) !== d; d = path.dirname(d)) parents.push(path.dirname(d));
  if (parents.some((d) => existsSync(path.join(d, 'node_modules')))) t.comment('a node_modules above the temp dir: the first assertion is skipped');
  else t.equal(compileCacheFor(bare), null, 'no cache without a node_modules');

  const project = tempDir(t);
  mkdirSync(path.join(project, 'node_modules'));
  // `.cache` is a file: no directory can be made under it.
  writeFileSync(path.join(project, 'node_modules', '.cache'), 'not a directory');
  const plugins = path.join(project, 'plugins');
  mkdirSync(plugins);
  const file = path.join(plugins, 'plain.ts');
  writeFileSync(file, plugin('plain'));
  const first = await loadPluginModule(file, plugins, 5000);
  const second = await loadPluginModule(file, plugins, 5000);
  t.equal((first.exports['default'] as { name: string }).name, 'plain', 'it loads');
  t.equal((second.exports['default'] as { name: string }).name, 'plain', 'and loads again');
});

t.test('the cache keeps at most 256 entries: past that, the oldest go', async (t) => {
  const cache = new CompileCache(path.join(tempDir(t), 'cache'));
  for (let i = 0; i < 257; i++) await cache.put(`k${String(i).padStart(3, '0')}`, `// ${i}`);
  const left = readdirSync(cache.dir).sort();
  t.equal(left.length, 192, 'pruned to 192 at the 257th');
  t.equal(await cache.get('k256'), '// 256', 'the newest stays');
  t.equal(await cache.get('k000'), undefined, 'an old one is gone (a miss, which compiles again)');
});
