/**
 * Soak: 100 kill -9 cycles against `jobhost start` (issue 6), printing the counts.
 * Run: `npm run bench -- soak-kill` (or `npx tsx bench/soak-kill.ts [cycles]`). Takes minutes.
 */
import { pathToFileURL } from 'node:url';
import { addKillPlugin, killCycles } from '../test/e2e/kill-cycles.js';
import { createProject } from '../test/e2e/project.js';
import { benchDir, fmt, header, row } from './util.js';

export async function soakKillBench(cycles = 100): Promise<void> {
  header(`soak: ${cycles} kill -9 cycles with HTTP triggers in flight`);
  const { dir, remove } = benchDir('jobhost-soak-');
  createProject(dir, { server: { port: 0 }, store: { keepRuns: 1_000_000 } }, { examples: false });
  addKillPlugin(dir);
  const t0 = performance.now();
  const report = await killCycles(dir, {
    cycles,
    onCycle: (i, acked) => {
      if ((i + 1) % 10 === 0) process.stdout.write(`  … ${i + 1} cycles, ${fmt(acked)} acknowledged\n`);
    },
  });
  row('cycles', `${report.cycles} in ${fmt((performance.now() - t0) / 1000, 0)} s`);
  row('triggers acknowledged (202)', fmt(report.acknowledged));
  row('triggers cut off by a kill (not acknowledged)', fmt(report.refusedOrCut));
  row('acknowledged runs found final after the last restart', fmt(report.finalized));
  row('acknowledged runs missing', String(report.missing.length));
  row('acknowledged runs not final within 60 s', String(report.notFinal.length));
  row('restarts that failed to load the store', String(report.failedStarts.length));
  row('store damage reported (a kill -9 should leave none)', String(report.damage.length));
  for (const f of report.failedStarts) console.log(`    ${f}`);
  remove();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await soakKillBench(Number(process.argv[2] ?? 100));
}
