import { appendFileSync, cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { JobContext } from '../../../core/contract/plugin.js';
import { gate, startHost, tempDir } from '../../helpers.js';

/**
 * The local backend keeps run logs: an unfinished run's lines are journaled (a crash keeps them),
 * a finished run's log goes beside its final record in its segment's logs file, retention drops
 * that file with the segment, and the memory store keeps the newest keepRuns logs.
 */

t.test("a crash mid-run keeps the lines logged so far; the recovered run's next attempt adds to them", async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const release = gate();
  const a = await startHost(t, { dir });
  a.host.register({
    name: 'long',
    retry: { attempts: 3 },
    async handler(ctx: JobContext) {
      ctx.log.info({ attempt: ctx.attempt }, 'starting');
      await release.promise;
    },
  });
  const { runId } = await a.host.trigger('long');
  await a.clock.advance(0);
  await new Promise((r) => setImmediate(r));
  t.equal((await a.host.runLog(runId)).log.lines.length, 1, 'the line is kept (a read sends it along)');
  await a.host.flush();
  cpSync(dir, crashed, { recursive: true }); // what a kill -9 leaves: no closing checkpoint

  const b = await startHost(t, { dir: crashed, clock: a.clock, plugins: [{ name: 'long', handler: (ctx: JobContext) => ctx.log.warn('second go') }] });
  const run = await b.host.wait(runId);
  t.match(run, { status: 'succeeded', source: 'recovery' });
  const { log } = await b.host.runLog(runId);
  t.same(
    log.lines.map((l) => [l.attempt, l.level, l.msg]),
    [
      [1, 'info', 'starting'],
      [2, 'warn', 'second go'],
    ],
  );
  t.same(log.lines[0]!.fields, { attempt: 1 });
  release.open();
});

t.test("a finished run's log is written beside its segment, and retention drops it with the segment", async (t) => {
  const { host, dir } = await startHost(t, { storeOptions: { segmentSize: 4, checkpointRuns: 4 }, config: { store: { keepRuns: 4 } } });
  host.register({ name: 'say', handler: (ctx: JobContext<{ n: number }>) => ctx.log.info(`run ${ctx.params.n}`) });
  const ids: string[] = [];
  for (let n = 1; n <= 4; n++) ids.push((await host.wait((await host.trigger('say', { params: { n } })).runId)).id);
  await host.flush();
  const segments = path.join(dir, 'segments');
  t.ok(existsSync(path.join(segments, '1.logs.ndjson')), 'segment 1 has its logs file');
  const first = readFileSync(path.join(segments, '1.logs.ndjson'), 'utf8').trim().split('\n');
  t.equal(first.length, 4, 'one line per run');
  t.match(JSON.parse(first[0]!), { id: ids[0], job: 'say', log: { lines: [{ msg: 'run 1' }], dropped: 0 } });
  t.match((await host.runLog(ids[0]!)).log.lines, [{ msg: 'run 1' }]);

  // Eight more runs: segments 1 and 2 fall out of keepRuns; their logs files go with them.
  for (let n = 5; n <= 12; n++) await host.wait((await host.trigger('say', { params: { n } })).runId);
  await host.flush();
  await host.wait((await host.trigger('say', { params: { n: 13 } })).runId); // a commit after the checkpoint that expired them
  await host.flush();
  const files = readdirSync(segments);
  t.notOk(files.includes('1.logs.ndjson'), 'the logs of segment 1 went with it');
  t.notOk(files.includes('1.ndjson'));
  t.same((await host.runLog(ids[0]!).catch((e: { code: string }) => e.code)) as unknown, 'RUN_NOT_FOUND', 'the run is gone from history');
});

t.test('a torn last line in a logs file does not swallow the next log written to it', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'say', handler: (ctx: JobContext<{ n: number }>) => ctx.log.info(`run ${ctx.params.n}`) });
  const one = (await a.host.wait((await a.host.trigger('say', { params: { n: 1 } })).runId)).id;
  await a.host.stop();
  const file = path.join(dir, 'segments', '1.logs.ndjson');
  appendFileSync(file, '{"id":"torn-by-a-crash","job":"say","log":{"lines":[{"att');
  await a.clock.advance(1); // the same clock and random source would make the same run ids
  const b = await startHost(t, { dir, clock: a.clock });
  b.host.register({ name: 'say', handler: (ctx: JobContext<{ n: number }>) => ctx.log.info(`run ${ctx.params.n}`) });
  const two = (await b.host.wait((await b.host.trigger('say', { params: { n: 2 } })).runId)).id;
  t.match((await b.host.runLog(one)).log.lines, [{ msg: 'run 1' }]);
  t.match((await b.host.runLog(two)).log.lines, [{ msg: 'run 2' }], 'the log after the torn line reads back');
});

t.test('the memory store keeps the logs of its newest keepRuns runs', async (t) => {
  const { host } = await startHost(t, { store: 'memory', config: { store: { keepRuns: 2 } } });
  host.register({ name: 'say', handler: (ctx: JobContext<{ n: number }>) => ctx.log.info(`run ${ctx.params.n}`) });
  const ids: string[] = [];
  for (let n = 1; n <= 3; n++) ids.push((await host.wait((await host.trigger('say', { params: { n } })).runId)).id);
  t.same(
    (await host.runLog(ids[2]!)).log.lines.map((l) => l.msg),
    ['run 3'],
  );
  t.same(
    (await host.runLog(ids[1]!)).log.lines.map((l) => l.msg),
    ['run 2'],
  );
  const oldest = await host.run(ids[0]!);
  if (oldest) t.same((await host.runLog(ids[0]!)).log.lines, [], 'past keepRuns its log is gone');
  else t.pass('the run itself is gone');
});

t.test('a bulk-cancel style cancel (waitingOnly) leaves a running run alone and cancels a waiting one', async (t) => {
  const { host } = await startHost(t);
  const release = gate();
  host.register({ name: 'held', handler: () => release.promise });
  const running = (await host.trigger('held')).runId;
  const waiting = (await host.trigger('held')).runId;
  await new Promise((r) => setImmediate(r));
  t.equal((await host.run(running))?.status, 'running');
  const result = await host.cancelQueued({ job: 'held' });
  t.same(
    result.runs.map((r) => r.runId),
    [waiting],
  );
  t.equal((await host.run(running))?.status, 'running');
  t.equal((await host.run(waiting))?.status, 'canceled');
  release.open();
});
