import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseNdjson, parseNdjsonInSlices, writeFileDurable, writePartsDurable } from '../../../core/store/files.js';
import { tempDir } from '../../helpers.js';

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
const isRecord = (v: unknown): boolean => typeof v === 'object' && v !== null && 'id' in v;

t.test('a torn tail: an unterminated last line, cut off by goodBytes', async (t) => {
  const r = parseNdjson(buf('{"id":1}\n{"id":2}\n{"id":3'));
  t.same(r.items, [{ id: 1 }, { id: 2 }]);
  t.same(
    r.bad.map((b) => [b.line, b.torn]),
    [[3, true]],
  );
  t.equal(r.goodBytes, 18);
  t.equal(r.goodLines, 2);
  t.equal(r.total, 3);
});

t.test('a complete last line that does not load, without NUL bytes, is damage, not a tear: goodBytes keeps it', async (t) => {
  const r = parseNdjson(buf('{"id":1}\n{"id":2,"x":####}\n'));
  t.same(
    r.bad.map((b) => [b.line, b.torn]),
    [[2, false]],
  );
  t.equal(r.goodBytes, 27, 'nothing is cut off');
  t.equal(r.goodLines, 2);
  // Followed by zero-filled bytes (a crash on ext4 mid-append): those are the tear, the line stays damage.
  const z = parseNdjson(buf('{"id":1}\ngarbage\n\0\0\0'));
  t.same(
    z.bad.map((b) => [b.line, b.torn]),
    [
      [2, false],
      [3, true],
    ],
  );
  t.equal(z.goodBytes, 17);
  t.equal(z.goodLines, 2);
});

t.test('NUL bytes in the tail are part of the tear, newline or not', async (t) => {
  const r = parseNdjson(buf('{"id":1}\n{"id":2\0\0\0\0}\n\0\0\0\0\n\0\0'));
  t.same(
    r.bad.map((b) => [b.line, b.torn]),
    [
      [2, true],
      [3, true],
      [4, true],
    ],
  );
  t.equal(r.goodBytes, 9);
  t.equal(r.goodLines, 1);
  // A zero-filled line before a complete line without NUL bytes: the tear is only what ends the file.
  t.same(
    parseNdjson(buf('{"id":1}\n\0\0\n{"id":\n')).bad.map((b) => [b.line, b.torn]),
    [
      [2, false],
      [3, false],
    ],
  );
  // In the middle, NUL bytes are damage like any other.
  t.same(
    parseNdjson(buf('{"id":1}\n{"id":\0\0}\n{"id":3}\n')).bad.map((b) => [b.line, b.torn]),
    [[2, false]],
  );
});

t.test('damage: an unreadable line with a readable one after it, or a line that is JSON but not a record', async (t) => {
  const r = parseNdjson(buf('{"id":1}\n{"id":\0\0}\n{"id":3}\n[1,2]\n{"id":5}\n{"id":6'), isRecord);
  t.same(r.items, [{ id: 1 }, { id: 3 }, { id: 5 }]);
  t.same(r.lines, [0, 2, 4], 'each item keeps its line number');
  t.same(
    r.bad.map((b) => [b.line, b.torn, b.text]),
    [
      [2, false, '{"id":\0\0}'],
      [4, false, '[1,2]'],
      [6, true, '{"id":6'],
    ],
  );
  t.equal(r.goodLines, 5, 'damaged lines before the last good one are counted in goodLines');
});

t.test('empty lines are skipped, never bad; nothing at all is an empty read', async (t) => {
  t.match(parseNdjson(buf('{"id":1}\n\n{"id":2}\n')), { items: [{ id: 1 }, { id: 2 }], bad: [], goodLines: 3, total: 3 });
  t.match(parseNdjson(buf('')), { items: [], bad: [], goodBytes: 0, total: 0 });
});

t.test('in slices: the same result as in one go', async (t) => {
  const text = Array.from({ length: 1000 }, (_, i) => (i === 500 ? 'x' : JSON.stringify({ id: i }))).join('\n') + '\n{"id"';
  t.same(await parseNdjsonInSlices(buf(text), isRecord, 7), parseNdjson(buf(text), isRecord));
});

t.test('a durable write that fails removes its temp file and leaves the file as it was', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.json');
  writeFileSync(file, '{"before":true}');
  const failing = async function* (): AsyncGenerator<string> {
    yield '{"after":';
    throw new Error('the disk is full');
  };
  await t.rejects(writePartsDurable(file, failing(), true), { message: 'the disk is full' });
  t.same(readdirSync(dir), ['state.json'], 'no temp file left');
  t.equal(readFileSync(file, 'utf8'), '{"before":true}');

  // The rename fails (a directory where the file goes): the complete temp file goes too.
  const taken = path.join(dir, 'format');
  mkdirSync(taken);
  await t.rejects(writeFileDurable(taken, '{"format":1}\n', true));
  t.same(readdirSync(dir).sort(), ['format', 'state.json']);
});
