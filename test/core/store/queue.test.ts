import t from 'tap';
import { Deque, PriorityFifo, TimeHeap, WeightedQueues } from '../../../core/store/queue.js';

t.test('Deque: FIFO with unshift, compacting as it goes', async (t) => {
  const d = new Deque<number>();
  for (let i = 0; i < 5000; i++) d.push(i);
  for (let i = 0; i < 4000; i++) t.equal(d.shift(), i);
  d.unshift(-1);
  t.equal(d.length, 1001);
  t.equal(d.shift(), -1);
  t.same([...d].slice(0, 3), [4000, 4001, 4002]);
  const e = new Deque<string>();
  e.unshift('a');
  e.unshift('b');
  t.same([e.shift(), e.shift(), e.shift()], ['b', 'a', undefined]);
});

t.test('PriorityFifo: lower priority first, FIFO within, unshift keeps the turn', async (t) => {
  const q = new PriorityFifo<string>();
  q.push('p5', 5);
  q.push('a0', 0);
  q.push('n1', -1);
  q.push('b0', 0);
  q.unshift('front0', 0);
  t.equal(q.size, 5);
  t.same([q.shift(), q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], ['n1', 'front0', 'a0', 'b0', 'p5', undefined]);
  t.equal(q.size, 0);
});

t.test('WeightedQueues: smooth weighted round-robin among non-empty queues', async (t) => {
  const q = new WeightedQueues<string>({ critical: 6, default: 2, low: 1 });
  for (let i = 0; i < 90; i++) for (const name of ['critical', 'default', 'low']) q.push(name, name, 0);
  const first9 = Array.from({ length: 9 }, () => q.shift());
  t.same(first9.filter((x) => x === 'critical').length, 6);
  t.same(first9.filter((x) => x === 'default').length, 2);
  t.same(first9.filter((x) => x === 'low').length, 1);
  // an unknown queue falls back to default; dropped queues keep their items
  q.push('nope', 'to-default', 0);
  q.setWeights({ default: 1 });
  t.ok(q.has('critical'));
  t.same(Object.keys(q.sizes()).sort(), ['critical', 'default', 'low']);
});

t.test('TimeHeap agrees with a sort', async (t) => {
  const heap = new TimeHeap<number>();
  const keys = Array.from({ length: 500 }, () => Math.floor(Math.random() * 1000));
  for (const k of keys) heap.push(k, k);
  const out: number[] = [];
  while (heap.size > 0) out.push(heap.pop()!);
  t.same(
    out,
    [...keys].sort((a, b) => a - b),
  );
});
