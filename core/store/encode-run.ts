import type { Run } from '../contract/run.js';
import type { AppendFile } from './files.js';
import { j, num, serializeRun, value } from './serialize.js';

/**
 * A run's line encoded straight into the append buffer: the same bytes as
 * `Buffer.from(serializeRun(run, end))` (a test checks it), without the string. Building the line
 * as a string made ~1.5 KB of garbage a run (its cons-string pieces, then the flat copy that
 * encoding it needs), which with ~0.5 KB of the run's other strings was most of what the disk
 * store allocates beyond the in-memory one, and so most of its extra garbage collection.
 *
 * ASCII is written a character at a time; a string with anything else in it is handed to
 * `Buffer.write` (UTF-8) whole. Each write checks nothing: past the chunk's end the typed array
 * drops bytes and the position still grows, so the caller sees an overflow at the end and
 * appends the line as a string instead (AppendBuffer.appendEncoded).
 */

/** Bytes made free for a line before encoding it: a no-op run's line is ~530. */
const ROOM = 4096;

function w(buf: Buffer, p: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return utf8(buf, p, s);
    buf[p + i] = c;
  }
  return p + n;
}

function utf8(buf: Buffer, p: number, s: string): number {
  if (p + s.length * 3 > buf.length) return buf.length + 1;
  return p + buf.write(s, p);
}

/** The host field's JSON: one host per process, so its last value is kept rather than stringified per run. */
let lastHost: string | null | undefined;
let lastHostJson = 'null';

// biome-ignore format: one field a line, as serializeRun
function encodeRun(buf: Buffer, p: number, r: Run): number {
  p = w(buf, p, '{"id":"'); p = w(buf, p, r.id);
  p = w(buf, p, '","job":"'); p = w(buf, p, r.job);
  p = w(buf, p, '","status":"'); p = w(buf, p, r.status);
  p = w(buf, p, '","source":"'); p = w(buf, p, r.source);
  p = w(buf, p, '","params":'); p = w(buf, p, value(r.params));
  p = w(buf, p, ',"priority":'); p = w(buf, p, num(r.priority));
  if (r.key === null) p = w(buf, p, ',"key":null,"queue":"');
  else { p = w(buf, p, ',"key":'); p = w(buf, p, j(r.key)); p = w(buf, p, ',"queue":"'); }
  p = w(buf, p, r.queue);
  p = w(buf, p, '","createdAt":"'); p = w(buf, p, r.createdAt);
  p = w(buf, p, '","runAt":"'); p = w(buf, p, r.runAt);
  if (r.startedAt === null) p = w(buf, p, '","startedAt":null');
  else { p = w(buf, p, '","startedAt":"'); p = w(buf, p, r.startedAt); p = w(buf, p, '"'); }
  if (r.endedAt === null) p = w(buf, p, ',"endedAt":null,"durationMs":');
  else { p = w(buf, p, ',"endedAt":"'); p = w(buf, p, r.endedAt); p = w(buf, p, '","durationMs":'); }
  p = w(buf, p, num(r.durationMs));
  p = w(buf, p, ',"progress":{"fraction":'); p = w(buf, p, num(r.progress.fraction));
  if (r.progress.text === null) p = w(buf, p, ',"text":null},"attempts":[');
  else { p = w(buf, p, ',"text":'); p = w(buf, p, j(r.progress.text)); p = w(buf, p, '},"attempts":['); }
  for (let i = 0; i < r.attempts.length; i++) {
    const a = r.attempts[i]!;
    p = w(buf, p, i > 0 ? ',{"n":' : '{"n":'); p = w(buf, p, num(a.n));
    p = w(buf, p, ',"startedAt":"'); p = w(buf, p, a.startedAt);
    if (a.endedAt === null) p = w(buf, p, '","endedAt":null,"error":');
    else { p = w(buf, p, '","endedAt":"'); p = w(buf, p, a.endedAt); p = w(buf, p, '","error":'); }
    p = w(buf, p, a.error === null ? 'null}' : j(a.error) + '}');
  }
  p = w(buf, p, '],"maxAttempts":'); p = w(buf, p, num(r.maxAttempts));
  p = w(buf, p, ',"result":'); p = w(buf, p, value(r.result));
  if (r.error === null && r.retryOf === null && r.event === null) p = w(buf, p, ',"error":null,"retryOf":null,"event":null');
  else {
    p = w(buf, p, ',"error":'); p = w(buf, p, j(r.error));
    p = w(buf, p, ',"retryOf":'); p = w(buf, p, j(r.retryOf));
    p = w(buf, p, ',"event":'); p = w(buf, p, j(r.event));
  }
  if (r.after) { p = w(buf, p, ',"after":{"runId":"'); p = w(buf, p, r.after.runId); p = w(buf, p, '","job":"'); p = w(buf, p, r.after.job); p = w(buf, p, '"}'); }
  if (r.origin !== undefined) { p = w(buf, p, ',"origin":"'); p = w(buf, p, r.origin); p = w(buf, p, '"'); }
  if (r.host !== undefined) {
    if (r.host !== lastHost) { lastHost = r.host; lastHostJson = j(r.host); }
    p = w(buf, p, ',"host":'); p = w(buf, p, lastHostJson);
  }
  if (r.traceparent !== undefined) {
    if (r.traceId === undefined) p = w(buf, p, ',"traceId":null');
    else { p = w(buf, p, ',"traceId":"'); p = w(buf, p, r.traceId); p = w(buf, p, '"'); }
    p = w(buf, p, ',"traceparent":"'); p = w(buf, p, r.traceparent); p = w(buf, p, '"');
  }
  return w(buf, p, '}');
}

/** A history segment's line: the run, a newline. */
export const segmentLine = (buf: Buffer, p: number, r: Run): number => w(buf, encodeRun(buf, p, r), '\n');

/** A journal's line: `{"r":<run>}`, a newline. */
export const journalLine = (buf: Buffer, p: number, r: Run): number => w(buf, encodeRun(buf, w(buf, p, '{"r":'), r), '}\n');

/** Appends `run`'s line to a segment (`journal` false) or a journal, encoded in place when it fits. */
export function appendRun(file: AppendFile, run: Run, journal: boolean): void {
  if (journal ? file.appendEncoded(ROOM, journalLine, run) : file.appendEncoded(ROOM, segmentLine, run)) return;
  file.append(journal ? '{"r":' + serializeRun(run, '}\n') : serializeRun(run, '\n'));
}
