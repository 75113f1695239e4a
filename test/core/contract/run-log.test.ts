import t from 'tap';
import { LOG_MAX_BYTES, LOG_MAX_LINES, type LogLine, LogTail, lineBytes } from '../../../core/contract/run-log.js';

const line = (i: number, msg = `line ${i}`, attempt = 1): LogLine => ({ attempt, i, at: '2026-01-05T12:00:00.000Z', level: 'info', msg });

t.test('a tail keeps the last 500 lines and counts the ones it dropped', async (t) => {
  const tail = new LogTail();
  for (let i = 1; i <= 700; i++) tail.add([line(i)]);
  const { lines, dropped } = tail.toJSON();
  t.equal(lines.length, LOG_MAX_LINES);
  t.equal(dropped, 200);
  t.equal(lines[0]!.i, 201);
  t.equal(lines.at(-1)!.i, 700);
});

t.test('a tail keeps at most 256 KiB of lines (as JSON), whichever bound comes first', async (t) => {
  const tail = new LogTail();
  const big = 'x'.repeat(8000);
  for (let i = 1; i <= 60; i++) tail.add([line(i, big)]);
  const { lines, dropped } = tail.toJSON();
  const bytes = lines.reduce((sum, l) => sum + lineBytes(l), 0);
  t.ok(bytes <= LOG_MAX_BYTES, `${bytes} bytes`);
  t.ok(bytes + lineBytes(line(1, big)) > LOG_MAX_BYTES, 'no room for one more');
  t.equal(lines.length + dropped, 60);
  t.equal(lines.at(-1)!.i, 60);
});

t.test('lines come back in order by attempt and number, each once, whatever order they were added in', async (t) => {
  const tail = new LogTail({ lines: [line(2, 'b', 2)], dropped: 3 });
  tail.add([line(1, 'a', 2), line(5, 'e', 1), line(2, 'b', 2)]);
  tail.countDropped(2);
  t.same(
    tail.toJSON().lines.map((l) => `${l.attempt}:${l.i}`),
    ['1:5', '2:1', '2:2'],
  );
  t.equal(tail.toJSON().dropped, 5);
  t.equal(tail.size, 3);
});
