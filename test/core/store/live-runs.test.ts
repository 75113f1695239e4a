import t from 'tap';
import type { Run } from '../../../core/contract/run.js';
import { LiveRuns, Newest } from '../../../core/store/live-runs.js';
import { startHost } from '../../helpers.js';

/** The index of unfinished runs that history pages walk (GET /runs never collects the backlog). */

const run = (id: string, extra: Partial<Run> = {}): Run => ({ id, job: 'j', status: 'queued', ...extra }) as Run;
const ids = (runs: Iterable<Run>): string[] => [...runs].map((r) => r.id);

t.test('newest() walks ids newest first from a cursor, whatever order they came in', async (t) => {
  const live = new LiveRuns();
  for (const id of ['b', 'd', 'a', 'f', 'c', 'e']) live.set(id, run(id));
  t.same(ids(live.newest()), ['f', 'e', 'd', 'c', 'b', 'a']);
  t.same(ids(live.newest('d')), ['c', 'b', 'a'], 'strictly before the cursor');
  t.same(ids(live.newest('a')), []);
  live.set('d', run('d', { status: 'running' }));
  t.same(ids(live.newest()), ['f', 'e', 'd', 'c', 'b', 'a'], 'an update does not add the id twice');
  t.equal(live.get('d')!.status, 'running');
  live.delete('d');
  live.delete('a');
  t.same(ids(live.newest()), ['f', 'e', 'c', 'b']);
  live.set('d', run('d'));
  t.same(ids(live.newest()), ['f', 'e', 'd', 'c', 'b'], 'removed and back: once');
  t.equal(live.size, 5);
});

t.test('many removals compact the index and keep it right', async (t) => {
  const live = new LiveRuns();
  const all = Array.from({ length: 5000 }, (_, i) => `r${String(i).padStart(5, '0')}`);
  for (const id of all) live.set(id, run(id));
  for (const id of all.slice(0, 4000)) live.delete(id);
  live.set('r00001', run('r00001'));
  const expected = [...all.slice(4000)].reverse().concat('r00001');
  t.same(ids(live.newest()), expected);
  const first = live.newest().next();
  t.equal(first.value?.id, 'r04999', 'lazy: the first is the newest, without walking the rest');
});

t.test('Newest keeps the k newest of any number offered', async (t) => {
  const top = new Newest(3);
  for (const i of [5, 1, 9, 3, 7, 8, 2, 6, 4, 0]) top.add(run(`r${i}`));
  t.same(ids(top.items()), ['r9', 'r8', 'r7']);
  t.equal(top.floor(), 'r7');
});

t.test('GET /runs pages through thousands of waiting runs and finished ones, newest first, filters too', async (t) => {
  const { host } = await startHost(t, { store: 'memory' });
  host.register({ name: 'a', overlap: 'allow', handler: () => null });
  host.register({ name: 'b', overlap: 'allow', handler: () => null });
  const finished: string[] = [];
  for (let i = 0; i < 30; i++) finished.push((await host.wait((await host.trigger(i % 2 ? 'a' : 'b')).runId)).id);
  host.pause();
  const waiting: string[] = [];
  for (let i = 0; i < 3000; i++) waiting.push((await host.trigger(i % 3 ? 'a' : 'b')).runId);
  const expected = [...finished, ...waiting].sort().reverse();
  const seen: string[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await host.runs({ limit: 500, ...(before && { before }) });
    seen.push(...page.items.map((r) => r.id));
    if (!page.next) break;
    before = page.next;
  }
  t.same(seen, expected, 'every run once, in order, across the waiting and the finished');
  const queuedB = await host.runs({ job: 'b', status: 'queued', limit: 5 });
  t.same(
    queuedB.items.map((r) => r.id),
    waiting
      .filter((_, i) => i % 3 === 0)
      .reverse()
      .slice(0, 5),
  );
  const done = await host.runs({ status: 'succeeded', limit: 100 });
  t.same(
    done.items.map((r) => r.id),
    [...finished].reverse(),
    'a filter no waiting run matches still finds the finished ones',
  );
});
