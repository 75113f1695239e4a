import t from 'tap';
import { addKillPlugin, killCycles } from '../e2e/kill-cycles.js';
import { makeProject } from '../e2e/project.js';

t.test('kill -9 at random moments, 20 times: every acknowledged run survives and finishes; the store always loads', async (t) => {
  const dir = makeProject(t, { server: { port: 0 }, store: { keepRuns: 100_000 } }, { examples: false });
  addKillPlugin(dir);
  const report = await killCycles(dir, { cycles: 20 });
  t.same(report.failedStarts, [], 'every restart loaded the store');
  t.ok(report.acknowledged > 100, `${report.acknowledged} triggers acknowledged across the cycles`);
  t.same(report.missing, [], 'no acknowledged run is missing');
  t.same(report.notFinal, [], 'every acknowledged run reached a final state');
  t.equal(report.finalized, report.acknowledged);
  t.same(report.damage, [], 'a kill -9 leaves at most a torn tail, never what jobhost reports as damage');
});
