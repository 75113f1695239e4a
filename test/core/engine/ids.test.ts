import t from 'tap';
import { createIdGenerator } from '../../../core/engine/ids.js';

t.test('ids sort by time, count within a millisecond, and end in the node part the backend gives', async (t) => {
  let now = 1_795_000_000_000;
  const newId = createIdGenerator(
    () => now,
    () => 0,
  );
  const a = newId();
  const b = newId();
  t.ok(a < b, 'two ids of one millisecond still sort');
  t.equal(a.slice(-3), '000', 'random node part (0 here)');
  newId.setNode('x7q');
  now += 1;
  const c = newId();
  t.equal(c.slice(-3), 'x7q', 'the node part given');
  t.ok(b < c);
  t.equal(c.length, 16);
  t.throws(() => newId.setNode('TOO-LONG'), /three base-36 characters/);
});
