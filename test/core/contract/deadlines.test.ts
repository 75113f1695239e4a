import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { Deadlines, type HeapItem, IndexedHeap } from '../../../core/contract/deadlines.js';

t.test('IndexedHeap agrees with a sort, under random pushes and removals', async (t) => {
  const keys = Array.from({ length: 500 }, () => Math.floor(Math.random() * 1000));
  interface Item extends HeapItem {
    id: number;
  }
  const ih = new IndexedHeap<Item>();
  const items: Item[] = keys.map((k, id) => ({ id, heapKey: k, heapIndex: -1 }));
  for (const it of items) ih.push(it);
  const removed = new Set<number>();
  for (const it of items)
    if (it.id % 3 === 0) {
      ih.remove(it);
      removed.add(it.id);
      t.equal(it.heapIndex, -1);
    }
  ih.remove(items[0]!); // removing twice is harmless
  const rest: number[] = [];
  for (let it = ih.pop(); it; it = ih.pop()) rest.push(it.heapKey);
  t.same(
    rest,
    items
      .filter((i) => !removed.has(i.id))
      .map((i) => i.heapKey)
      .sort((a, b) => a - b),
  );
  t.equal(ih.size, 0);
  t.equal(ih.peek(), undefined);
});

interface Attempt extends HeapItem {
  id: string;
}
const attempt = (id: string): Attempt => ({ id, heapKey: 0, heapIndex: -1 });

t.test('Deadlines: each item handed over once at its time, earliest first, on one timer; a deleted one never', async (t) => {
  const clock = createManualClock(1_000);
  const due: Array<[string, number]> = [];
  const deadlines = new Deadlines<Attempt>(clock, (a) => due.push([a.id, clock.now()]));
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(attempt);
  deadlines.set(a!, 1_300);
  deadlines.set(b!, 1_100);
  deadlines.set(c!, 1_200);
  deadlines.set(d!, 1_150);
  t.equal(clock.pending(), 1, 'one timer, for the earliest (the one armed for a later deadline was replaced)');
  deadlines.delete(d!);
  await clock.advance(99);
  t.same(due, [], 'nothing before its time');
  await clock.advance(1);
  t.same(due, [['b', 1_100]]);
  await clock.advance(500);
  t.same(due, [
    ['b', 1_100],
    ['c', 1_200],
    ['a', 1_300],
  ]);
  t.equal(clock.pending(), 0, 'no timer left once nothing waits');
  deadlines.set(a!, clock.now() + 10);
  deadlines.set(a!, clock.now() + 50); // a new deadline replaces the old one
  await clock.advance(20);
  t.equal(due.length, 3, 'the replaced deadline does not fire');
  await clock.advance(30);
  t.same(due.at(-1), ['a', 1_650]);
});

t.test('Deadlines: a deadline set from inside `due` is armed; close stops the timer', async (t) => {
  const clock = createManualClock(0);
  const seen: string[] = [];
  const deadlines = new Deadlines<Attempt>(clock, (item) => {
    seen.push(item.id);
    if (item.id === 'first') deadlines.set(attempt('next'), clock.now() + 5);
  });
  deadlines.set(attempt('first'), 10);
  await clock.advance(20);
  t.same(seen, ['first', 'next']);
  deadlines.set(attempt('never'), 100);
  deadlines.close();
  t.equal(clock.pending(), 0);
  await clock.advance(200);
  t.same(seen, ['first', 'next'], 'closed: nothing fires');
});
