import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import type { Run } from '../../../core/contract/run.js';
import { Checkpoints } from '../../../core/store/checkpoints.js';
import { readCheckpoint } from '../../../core/store/store-files.js';
import { startHost, tempDir } from '../../helpers.js';

/**
 * A checkpoint is written a slice of runs at a time (a backlog of 100,000 waiting runs must not
 * stall the event loop for its whole serialization), and what changed meanwhile still lands.
 */

const run = (i: number): Run =>
  ({
    id: `r${String(i).padStart(6, '0')}`,
    job: 'j',
    status: 'queued',
    source: 'api',
    params: { i },
    priority: 0,
    key: null,
    queue: 'default',
    createdAt: '2026-01-05T12:00:00.000Z',
    runAt: '2026-01-05T12:00:00.000Z',
    startedAt: null,
    endedAt: null,
    durationMs: null,
    progress: { fraction: 0, text: null },
    attempts: [],
    maxAttempts: 1,
    result: null,
    error: null,
    retryOf: null,
    event: null,
  }) as Run;

t.test('the runs go out in slices with turns of the event loop between; a run that finished meanwhile is written again, last, final', async (t) => {
  const dir = tempDir(t);
  const clock = createManualClock(Date.UTC(2026, 0, 5, 12));
  const checkpoints = new Checkpoints(dir, false);
  await checkpoints.read(clock);
  const runs = Array.from({ length: 5000 }, (_, i) => run(i));
  runs[0]!.status = 'succeeded';
  let turns = 0;
  const ticker = setInterval(() => turns++, 0);
  let seen: ReadonlySet<string> | undefined;
  await checkpoints.write({
    runs: () => runs,
    finish: (writtenFinal) => {
      seen = writtenFinal;
      // Finished after its slice was written.
      runs[10]!.status = 'failed';
      return {
        again: [runs[10]!],
        content: { openSegment: 1, segments: [], jobs: { j: { counts: { succeeded: 1, failed: 1 } } }, notifications: [], foldSkip: ['r000000', 'r000010'] },
      };
    },
  });
  clearInterval(ticker);
  t.ok(turns >= 2, `the event loop turned between slices (${turns} timer turns)`);
  t.same([...seen!], ['r000000'], 'runs written final are reported');
  const doc = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as { checkpoint: number; live: Run[]; foldSkip: string[] };
  t.equal(doc.checkpoint, 1);
  t.equal(doc.live.length, 5001);
  t.same(doc.live.at(-1), { ...runs[10], status: 'failed' }, 'the late record comes last');
  t.equal(doc.live[10]!.status, 'queued');
  const { db, lost } = await readCheckpoint(dir, false, clock);
  t.equal(lost, undefined, 'the document passes the checkpoint schema');
  const byId = new Map(db.data.live.map((r) => [r.id, r]));
  t.equal(byId.get('r000010')!.status, 'failed', 'at load the last record wins');
  await checkpoints.close();
});

t.test('a host restarted over a backlog checkpointed in slices has every waiting run back', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir, storeOptions: { checkpointRuns: 50 } });
  a.host.register({ name: 'later', overlap: 'allow', handler: () => null });
  a.host.register({ name: 'now', overlap: 'allow', handler: () => ({ ok: true }) });
  const waiting: string[] = [];
  for (let i = 0; i < 2500; i++) waiting.push((await a.host.trigger('later', { delay: '1h' })).runId);
  // Runs finishing make checkpoints (one per 50 here) while the backlog waits.
  const done: string[] = [];
  for (let i = 0; i < 120; i++) done.push((await a.host.wait((await a.host.trigger('now')).runId)).id);
  await a.host.stop();
  const b = await startHost(t, { dir, clock: a.clock, start: false });
  b.host.register({ name: 'later', overlap: 'allow', handler: () => null });
  b.host.register({ name: 'now', overlap: 'allow', handler: () => null });
  await b.host.start();
  b.host.pause();
  t.equal(b.host.stats().store.liveRuns, 2500);
  t.match(await b.host.run(waiting[1234]!), { status: 'queued' });
  t.match(await b.host.run(done[119]!), { status: 'succeeded', result: { ok: true } });
  t.same(b.host.job('now')!.counts, { succeeded: 120, failed: 0, canceled: 0, queued: 0, running: 0 }, 'counted once each');
});
