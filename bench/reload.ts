/**
 * Memory over plugin reloads (issue 4): edits one plugin file 1,000 times while the host runs,
 * waiting for each `job.updated`, and prints heap and RSS growth after garbage collection. Every
 * 10th version runs in both worker threads, whose heaps are reported too (issue 17).
 * Goal: ≤20 MB. Run: `npm run bench -- reload` (or `npx tsx bench/reload.ts [reloads]`).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createHost, silentLogger } from '../core/index.js';
import { usePluginDirectory } from '../core/loader/plugin-directory.js';
import { benchDir, fmt, header, row } from './util.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function memory(): { heap: number; rss: number; total: number; ext: number } {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / 1e6, rss: m.rss / 1e6, total: m.heapTotal / 1e6, ext: m.external / 1e6 };
}

const core = pathToFileURL(path.resolve(import.meta.dirname, '../core/index.ts')).href;
/** A plugin of realistic size: a zod schema, a helper module, a few kB of code. */
const source = (version: number): string => `import { z } from 'zod';
import { definePlugin } from '${core}';
import { describe } from './lib/describe.js';
const table = ${JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ id: i, label: `row ${i} of version ${version}` })))};
export default definePlugin({
  name: 'reloaded',
  description: describe(${version}),
  schedule: '0 * * * *',
  params: z.object({ limit: z.number().int().default(10) }),
  async handler(ctx) {
    return table.slice(0, ctx.params.limit).map((r) => r.label);
  },
});
`;

export async function reloadBench(reloads = 1000): Promise<void> {
  header(`plugin reload memory: ${fmt(reloads)} edits of one plugin file`);
  const { dir, remove } = benchDir();
  const plugins = path.join(dir, 'plugins');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.join(plugins, 'lib'), { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: this is the helper's source, a template literal in it
  writeFileSync(path.join(plugins, 'lib/describe.ts'), 'export const describe = (v: number): string => `version ${v}`;\n');
  const file = path.join(plugins, 'reloaded.ts');
  writeFileSync(file, source(0));
  const host = createHost({ cwd: dir, store: 'memory', config: { workers: { size: 2 } }, logger: silentLogger() });
  usePluginDirectory(host, { dir: plugins, watch: true, importTimeoutMs: 10_000, debounceMs: 5, rescanMs: 0 });
  await host.start();
  const edit = async (version: number): Promise<void> => {
    const updated = new Promise<void>((resolve) => {
      const off = host.on('job.updated', () => {
        off();
        resolve();
      });
    });
    writeFileSync(file, source(version));
    await updated;
    // Every 10th version runs, twice at once, so each of the two worker threads loads it.
    if (version % 10 === 0) {
      const ids = await Promise.all([host.trigger('reloaded'), host.trigger('reloaded')]);
      await Promise.all(ids.map((r) => host.wait(r.runId)));
    }
  };
  const threadHeap = async (): Promise<number[]> => {
    for (let i = 0; i < 3; i++) await host.workerMemory();
    return (await host.workerMemory()).map((b) => b / 1e6);
  };
  // Warm-up: lets V8 size its young generation for this allocation rate first, so the figure
  // below is what reloads retain, not the nursery growing (bounded: ~6 MB with
  // --max-semi-space-size=1).
  for (let v = 1; v <= 200; v++) await edit(v);
  const before = memory();
  const threadsBefore = await threadHeap();
  const t0 = performance.now();
  for (let v = 201; v < 201 + reloads; v++) await edit(v);
  const elapsed = performance.now() - t0;
  // Every reload is real: the newest version answers.
  const run = await host.wait((await host.trigger('reloaded', { params: { limit: 1 } })).runId);
  const after = memory();
  const threadsAfter = await threadHeap();
  await host.stop();
  remove();
  row('reloads', `${fmt(reloads)} in ${fmt(elapsed / 1000, 1)} s (${fmt(elapsed / reloads, 1)} ms each)`);
  row('last version answered', JSON.stringify(run.result));
  row('heap growth after GC', `${fmt(after.heap - before.heap, 1)} MB`);
  row('heap total / external growth', `${fmt(after.total - before.total, 1)} MB / ${fmt(after.ext - before.ext, 1)} MB`);
  row('RSS growth (the process: host and threads)', `${fmt(after.rss - before.rss, 1)} MB (goal ≤ 20 MB)`);
  row('worker threads: heap after GC, before → after', threadsAfter.map((a, i) => `${fmt(threadsBefore[i] ?? Number.NaN, 1)} → ${fmt(a, 1)} MB`).join(', '));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await reloadBench(Number(process.argv[2] ?? 1000));
}
