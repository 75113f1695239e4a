import t from 'tap';
import { pluginHost } from '../../plugin-host.js';

/**
 * Plugin files import packages as Node would import them, whatever the plugin's own extension
 * and whether its handler runs inline or in a worker thread: a default import of an ES-module
 * package is its default export, a package's JSON with its import attribute, and a CommonJS
 * plugin's `module.exports` is its definition.
 */

const pkg = (name: string, files: Record<string, string>, manifest: Record<string, unknown> = {}): Record<string, string> =>
  Object.fromEntries([
    [`../node_modules/${name}/package.json`, JSON.stringify({ name, version: '1.0.0', type: 'module', main: 'index.js', ...manifest })],
    ...Object.entries(files).map(([file, text]) => [`../node_modules/${name}/${file}`, text]),
  ]);

const packages = {
  ...pkg('esm-fn', { 'index.js': 'export default function twice(x) { return x * 2; }\nexport const named = "n";\n' }),
  ...pkg('esm-num', { 'index.js': 'export default 42;\n' }),
  ...pkg(
    'with-data',
    { 'index.js': 'export default 1;\n', 'dist/data.json': '{ "answer": 7 }' },
    { exports: { '.': './index.js', './data.json': './dist/data.json' } },
  ),
};

const body = `import twice, { named } from 'esm-fn';
import num from 'esm-num';
import data from 'with-data/data.json' with { type: 'json' };
const result = () => ({ twice: typeof twice === 'function' ? twice(3) : typeof twice, named, num, answer: data.answer });
`;

for (const isolation of ['worker', 'inline'] as const) {
  t.test(`${isolation}: an .mjs, a .ts and a .js plugin import packages as Node does`, async (t) => {
    const files = {
      ...packages,
      'a.mjs': `${body}export default { name: 'from-mjs', isolation: '${isolation}', handler: result };\n`,
      'b.ts': `${body}export default { name: 'from-ts', isolation: '${isolation}', handler: result };\n`,
      'c.js': `${body}export default { name: 'from-js', isolation: '${isolation}', handler: result };\n`,
      // CommonJS, as a project without "type": "module" writes it.
      'd.js': `const path = require('node:path');\nmodule.exports = { name: 'from-cjs', isolation: '${isolation}', handler: () => ({ sep: path.sep }) };\n`,
    };
    const ph = await pluginHost(t, files);
    for (const job of ['from-mjs', 'from-ts', 'from-js']) {
      const run = await ph.host.wait((await ph.host.trigger(job)).runId);
      t.match(run, { status: 'succeeded', result: { twice: 6, named: 'n', num: 42, answer: 7 } }, job);
    }
    t.match(await ph.host.wait((await ph.host.trigger('from-cjs')).runId), { status: 'succeeded', result: { sep: '/' } }, 'module.exports is the plugin');
  });
}
