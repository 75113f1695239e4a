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

t.test('the counter part keeps four characters past 36 and 1,296 ids in one millisecond, and ids keep sorting', async (t) => {
  let now = 1_795_000_000_000;
  const newId = createIdGenerator(
    () => now,
    () => 0,
  );
  const ids = Array.from({ length: 50_000 }, () => newId());
  t.ok(
    ids.every((id) => id.length === 16),
    'every id is 16 characters',
  );
  // The counter counts from 1: the 35th id ends its counter in z, the 36th carries into a second digit.
  t.equal(ids[34]!.slice(9, 13), '000z');
  t.equal(ids[35]!.slice(9, 13), '0010');
  t.equal(ids[1294]!.slice(9, 13), '00zz');
  t.equal(ids[1295]!.slice(9, 13), '0100');
  const stamp = now.toString(36).padStart(9, '0');
  t.ok(
    ids.every((id, i) => id === `${stamp}${(i + 1).toString(36).padStart(4, '0')}000`),
    'each id is the millisecond, the counter and the node, as written before the cache',
  );
  t.equal(ids[0]!.slice(0, 9), now.toString(36).padStart(9, '0'));
  t.ok(
    ids.every((id, i) => i === 0 || ids[i - 1]! < id),
    'strictly increasing',
  );
  now -= 5; // a clock that steps back: ids keep the last millisecond and count on
  const back = newId();
  t.equal(back.slice(0, 9), ids[0]!.slice(0, 9));
  t.ok(ids.at(-1)! < back);
  now += 10;
  const later = newId();
  t.equal(later.slice(0, 13), `${now.toString(36).padStart(9, '0')}0001`);
});
