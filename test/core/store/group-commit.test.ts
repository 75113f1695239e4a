import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseNdjson } from '../../../core/store/files.js';
import { GroupCommit, SLICE } from '../../../core/store/group-commit.js';
import { tempDir } from '../../helpers.js';
import { type ChildLine, parseChildLog } from './group-commit-child.js';

/**
 * A commit's waiters are answered a slice per turn, and the next commit starts between slices
 * (group-commit.ts): the work of the first waiters overlaps the next commit's write. These tests
 * drive the real GroupCommit with a commit function that takes what was saved, as the store's
 * does, and whose end the test controls.
 */

interface Gate {
  open(): void;
  promise: Promise<void>;
}

function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { open, promise };
}

/** A group commit over a list of saved items; each commit's start, end and items are logged. */
function harness(options: { failFirst?: boolean } = {}) {
  const log: string[] = [];
  const written: number[][] = [];
  const gates: Gate[] = [];
  let dirty: number[] = [];
  let failed = 0;
  const group = new GroupCommit(
    async () => {
      const taken = dirty;
      dirty = [];
      const k = written.length + 1;
      written.push(taken);
      log.push(`start ${k}`);
      const g = gate();
      gates.push(g);
      await g.promise;
      if (options.failFirst && failed === 0) {
        failed++;
        written[k - 1] = [];
        dirty = [...taken, ...dirty]; // the store keeps what it could not write
        log.push(`fail ${k}`);
        throw new Error('disk full');
      }
      log.push(`end ${k}`);
    },
    { committed: () => undefined, failed: (err) => new Error(`wrapped: ${(err as Error).message}`) },
  );
  const save = (item: number): Promise<void> => {
    dirty.push(item);
    return group.request();
  };
  /** Resolves once the n-th commit has started. */
  const startedCommit = async (n: number): Promise<Gate> => {
    while (gates.length < n) await new Promise((r) => setImmediate(r));
    return gates[n - 1]!;
  };
  return { group, log, written, save, startedCommit };
}

/** Lets every queued turn and microtask run. */
const settle = async (turns = 20): Promise<void> => {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
};

t.test('the next commit starts once half the waiters are answered; the other half is answered while it is on the disk', async (t) => {
  const h = harness();
  const n = 4 * SLICE;
  const half = n / 2;
  // A closed loop, as the engine benchmark's triggers: each acknowledged save makes the next one.
  const followUps: Promise<void>[] = [];
  const acked: number[] = [];
  const first = Array.from({ length: n }, (_, i) =>
    h.save(i).then(() => {
      acked.push(i);
      h.log.push(`ack ${i}`);
      followUps.push(h.save(n + i));
    }),
  );
  const commit1 = await h.startedCommit(1);
  t.same(h.written[0]!.length, n, 'one commit takes every save of the tick');
  await settle();
  t.same(acked, [], 'nothing is answered before its commit ends');
  commit1.open();
  const commit2 = await h.startedCommit(2);
  t.same(
    acked,
    Array.from({ length: half }, (_, i) => i),
    'the second commit started once the first two slices were answered',
  );
  t.same(
    h.written[1],
    Array.from({ length: half }, (_, i) => n + i),
    'it writes what they did next',
  );
  await Promise.all(first);
  t.same(acked.length, n, 'the later slices are answered while the second commit is on the disk');
  t.notOk(h.log.includes('end 2'), 'the second commit has not ended');
  t.ok(h.log.indexOf('end 1') < h.log.indexOf('start 2'), 'one commit on the disk at a time');
  t.ok(h.log.indexOf('start 2') < h.log.indexOf(`ack ${n - 1}`), 'the last waiter of the first commit was answered after the second started');
  // The later slices' next saves wait for the commit after the second.
  commit2.open();
  const commit3 = await h.startedCommit(3);
  t.same(
    h.written[2],
    Array.from({ length: half }, (_, i) => n + half + i),
    'the commit after it writes what the other half did next',
  );
  commit3.open();
  await Promise.all(followUps);
  t.same(
    h.written.flat().sort((a, b) => a - b),
    Array.from({ length: 2 * n }, (_, i) => i),
    'every save written once',
  );
});

t.test('no waiter is answered before the commit that wrote its save has ended, and waiters are answered in order', async (t) => {
  const h = harness();
  const ackAt = new Map<number, number>();
  const writtenBy = new Map<number, number>();
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < 5000) {
      const item = next++;
      await h.save(item);
      ackAt.set(item, h.log.length);
      h.log.push(`ack ${item}`);
    }
  };
  const producers = Array.from({ length: 700 }, producer);
  // Commits end at irregular moments: some at once, some after several turns.
  let k = 1;
  let done = false;
  void Promise.all(producers).then(() => (done = true));
  while (!done) {
    const g = await h.startedCommit(k);
    await settle(k % 4);
    for (const item of h.written[k - 1]!) writtenBy.set(item, k);
    g.open();
    k++;
    while (!done && h.written.length < k) await new Promise((r) => setImmediate(r));
  }
  t.equal(ackAt.size, 5000);
  t.ok(k > 8, `${k - 1} commits`);
  for (const [item, at] of ackAt) {
    const end = h.log.indexOf(`end ${writtenBy.get(item)}`);
    if (end < 0 || end > at) t.fail(`item ${item} answered at ${at}, its commit ended at ${end}`);
  }
  // Each commit's waiters in the order of their saves, commits in order.
  const order = [...ackAt].sort((a, b) => a[1] - b[1]).map(([item]) => item);
  const byCommit = order.map((item) => writtenBy.get(item)!);
  t.same(
    byCommit,
    [...byCommit].sort((a, b) => a - b),
    'the waiters of an earlier commit are all answered before those of a later one',
  );
  const overlapped = [...ackAt].filter(([item, at]) => {
    const next = h.log.indexOf(`start ${writtenBy.get(item)! + 1}`);
    return next >= 0 && next < at;
  });
  t.ok(overlapped.length > 0, `${overlapped.length} waiters were answered after the commit following theirs had started`);
});

t.test('a failed commit rejects every slice of its batch; the retry writes them; flush waits for every slice', async (t) => {
  const h = harness({ failFirst: true });
  const outcomes: string[] = [];
  const waiters = Array.from({ length: 2 * SLICE + 5 }, (_, i) =>
    h.save(i).then(
      () => outcomes.push('ok'),
      (err: Error) => outcomes.push(err.message),
    ),
  );
  (await h.startedCommit(1)).open();
  await Promise.all(waiters);
  t.same(new Set(outcomes), new Set(['wrapped: disk full']), 'every waiter of the failed commit, in every slice, hears the failure');
  t.ok(h.group.committing, 'the retry is pending');
  const later = h.save(9999);
  const flushed = h.group.flush();
  let flushedAt = -1;
  void flushed.then(() => (flushedAt = h.log.length));
  (await h.startedCommit(2)).open(); // the retry, after the backoff
  await flushed;
  t.same(h.written[0], [], 'the failed commit wrote nothing');
  t.same(h.written[1]!.length, 2 * SLICE + 6, 'the retry writes what the failed commit could not, and what came meanwhile');
  await later;
  t.ok(flushedAt > h.log.indexOf('end 2'));
  await settle();
  t.notOk(h.group.committing);
});

t.test('flush resolves once every slice of the last commit is answered', async (t) => {
  const h = harness();
  const acked: number[] = [];
  for (let i = 0; i < 4 * SLICE; i++) void h.save(i).then(() => acked.push(i));
  const flushed = h.group.flush();
  (await h.startedCommit(1)).open();
  await flushed;
  t.equal(acked.length, 4 * SLICE, 'every waiter was answered before flush resolved');
  await t.resolves(h.group.flush(), 'nothing pending: resolves at once');
});

t.test('kill -9 while commit k + 1 is on the disk and commit k is being answered: every acknowledged save is in the file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'journal.ndjson');
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./group-commit-child.ts', import.meta.url)), file, '1024', '200000'], {
    cwd: fileURLToPath(new URL('../../../', import.meta.url)),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
  t.equal(signal, 'SIGKILL', `killed itself at the overlap (stderr: ${err.slice(-500)})`);
  const lines = parseChildLog(readFileSync(`${file}.log`, 'utf8'));
  const kill = lines.at(-1) as { kind: string; item: number } | undefined;
  t.equal(kill?.kind, 'kill');
  // Where the overlap was: the killing ack's commit k had ended, commit k + 1 had started after it and not ended.
  const starts = lines.filter((l): l is Extract<ChildLine, { kind: 'start' }> => l.kind === 'start');
  const k = starts.find((s) => s.items.includes(kill?.item ?? -1))?.commit ?? -1;
  const at = (kind: 'start' | 'end', commit: number): number => lines.findIndex((l) => l.kind === kind && l.commit === commit);
  t.ok(at('end', k) >= 0 && at('end', k) < at('start', k + 1), `commit ${k + 1} started after commit ${k} ended`);
  t.ok(at('start', k + 1) >= 0 && at('end', k + 1) < 0, `commit ${k + 1} was on the disk at the kill`);
  const acked = lines.filter((l) => l.kind === 'ack').map((l) => (l as { item: number }).item);
  t.ok(acked.length >= SLICE, `${acked.length} saves acknowledged`);
  // What a restart finds: every acknowledged save, nothing damaged (a torn tail at most).
  const read = parseNdjson<{ item: number }>(readFileSync(file));
  t.same(
    read.bad.filter((b) => !b.torn),
    [],
    'no damage',
  );
  const found = new Set(read.items.map((r) => r.item));
  t.same(
    acked.filter((item) => !found.has(item)),
    [],
    'every acknowledged save survived the kill',
  );
});
