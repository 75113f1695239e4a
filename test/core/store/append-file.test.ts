import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { rest } from '../../../core/store/append-buffer.js';
import { AppendFile } from '../../../core/store/files.js';
import { tempDir } from '../../helpers.js';

/**
 * The append file's buffer is a list of pooled chunks written with one writev: whatever the sizes
 * (lines across chunk ends, a line larger than a chunk, multi-byte text, appends made while a
 * commit is on the disk), the file holds exactly what was appended, in order.
 */

t.test('lines across chunks, a line larger than a chunk and multi-byte text land whole and in order', async (t) => {
  const file = path.join(tempDir(t), 'a.ndjson');
  const f = new AppendFile(file, { fsync: true });
  await f.open();
  let expected = '';
  const add = (line: string): void => {
    f.append(line);
    expected += line;
  };
  for (let i = 0; i < 3000; i++) add(`{"i":${i},"pad":"${'x'.repeat(i % 300)}","é":"ünïcödé €"}\n`);
  add(`{"big":"${'y'.repeat(600 * 1024)}"}\n`);
  t.equal(f.size, Buffer.byteLength(expected), 'size counts the bytes appended');
  const commit = f.commit();
  // Appended while the first commit is on the disk: the next commit's.
  add('{"after":true}\n');
  await commit;
  t.equal(readFileSync(file, 'utf8'), expected.slice(0, -'{"after":true}\n'.length));
  await f.commit();
  t.equal(readFileSync(file, 'utf8'), expected);
  t.equal(f.size, Buffer.byteLength(expected));
  t.notOk(f.pending);
  await f.close();
});

t.test('what is left after a short write', async (t) => {
  const bufs = [Buffer.from('abc'), Buffer.from('de'), Buffer.from('fgh')];
  t.equal(Buffer.concat(rest(bufs, 0)).toString(), 'abcdefgh');
  t.equal(Buffer.concat(rest(bufs, 2)).toString(), 'cdefgh');
  t.equal(Buffer.concat(rest(bufs, 3)).toString(), 'defgh');
  t.equal(Buffer.concat(rest(bufs, 6)).toString(), 'gh');
  t.equal(rest(bufs, 8).length, 0);
});
