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
 * The fixed parts are encoded once (L0...: in the order they appear) and copied; a run's strings
 * are written a character at a time while ASCII, and one with anything else in it is handed to
 * `Buffer.write` (UTF-8) whole; numbers are ASCII. (A micro-benchmark of no-op runs' lines: ~0.85
 * µs a line against ~0.75 for the string and its encoding, without the ~2 KB of garbage.)
 * No write checks the room left: past the chunk's end the typed array
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

/** Bytes of a fixed part, copied. */
function c(buf: Buffer, p: number, part: Buffer): number {
  const n = part.length;
  for (let i = 0; i < n; i++) buf[p + i] = part[i]!;
  return p + n;
}

/** A number as `num` wrote it: ASCII, unchecked. */
function n(buf: Buffer, p: number, s: string): number {
  const len = s.length;
  for (let i = 0; i < len; i++) buf[p + i] = s.charCodeAt(i);
  return p + len;
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const NEWLINE = bytes('\n');
const JOURNAL_OPEN = bytes('{"r":');
const JOURNAL_CLOSE = bytes('}\n');

function utf8(buf: Buffer, p: number, s: string): number {
  if (p + s.length * 3 > buf.length) return buf.length + 1;
  return p + buf.write(s, p);
}

/** The host field's JSON: one host per process, so its last value is kept rather than stringified per run. */
let lastHost: string | null | undefined;
let lastHostJson = 'null';

/** The line's fixed parts, encoded once. */
const L0 = bytes('{"id":"');
const L1 = bytes('","job":"');
const L2 = bytes('","status":"');
const L3 = bytes('","source":"');
const L4 = bytes('","params":');
const L5 = bytes(',"priority":');
const L6 = bytes(',"key":null,"queue":"');
const L7 = bytes(',"key":');
const L8 = bytes(',"queue":"');
const L9 = bytes('","createdAt":"');
const L10 = bytes('","runAt":"');
const L11 = bytes('","startedAt":null');
const L12 = bytes('","startedAt":"');
const L13 = bytes('"');
const L14 = bytes(',"endedAt":null,"durationMs":');
const L15 = bytes(',"endedAt":"');
const L16 = bytes('","durationMs":');
const L17 = bytes(',"progress":{"fraction":');
const L18 = bytes(',"text":null},"attempts":[');
const L19 = bytes(',"text":');
const L20 = bytes('},"attempts":[');
const L21 = bytes(',"startedAt":"');
const L22 = bytes('","endedAt":null,"error":');
const L23 = bytes('","endedAt":"');
const L24 = bytes('","error":');
const L25 = bytes('],"maxAttempts":');
const L26 = bytes(',"result":');
const L27 = bytes(',"error":null,"retryOf":null,"event":null');
const L28 = bytes(',"error":');
const L29 = bytes(',"retryOf":');
const L30 = bytes(',"event":');
const L31 = bytes(',"after":{"runId":"');
const L32 = bytes('"}');
const L33 = bytes(',"origin":"');
const L34 = bytes(',"host":');
const L35 = bytes(',"traceId":null');
const L36 = bytes(',"traceId":"');
const L37 = bytes(',"traceparent":"');
const L38 = bytes('}');

// biome-ignore format: one field a line, as serializeRun
function encodeRun(buf: Buffer, p: number, r: Run): number {
  p = c(buf, p, L0); p = w(buf, p, r.id);
  p = c(buf, p, L1); p = w(buf, p, r.job);
  p = c(buf, p, L2); p = w(buf, p, r.status);
  p = c(buf, p, L3); p = w(buf, p, r.source);
  p = c(buf, p, L4); p = w(buf, p, value(r.params));
  p = c(buf, p, L5); p = n(buf, p, num(r.priority));
  if (r.key === null) p = c(buf, p, L6);
  else { p = c(buf, p, L7); p = w(buf, p, j(r.key)); p = c(buf, p, L8); }
  p = w(buf, p, r.queue);
  p = c(buf, p, L9); p = w(buf, p, r.createdAt);
  p = c(buf, p, L10); p = w(buf, p, r.runAt);
  if (r.startedAt === null) p = c(buf, p, L11);
  else { p = c(buf, p, L12); p = w(buf, p, r.startedAt); p = c(buf, p, L13); }
  if (r.endedAt === null) p = c(buf, p, L14);
  else { p = c(buf, p, L15); p = w(buf, p, r.endedAt); p = c(buf, p, L16); }
  p = n(buf, p, num(r.durationMs));
  p = c(buf, p, L17); p = n(buf, p, num(r.progress.fraction));
  if (r.progress.text === null) p = c(buf, p, L18);
  else { p = c(buf, p, L19); p = w(buf, p, j(r.progress.text)); p = c(buf, p, L20); }
  for (let i = 0; i < r.attempts.length; i++) {
    const a = r.attempts[i]!;
    p = w(buf, p, i > 0 ? ',{"n":' : '{"n":'); p = n(buf, p, num(a.n));
    p = c(buf, p, L21); p = w(buf, p, a.startedAt);
    if (a.endedAt === null) p = c(buf, p, L22);
    else { p = c(buf, p, L23); p = w(buf, p, a.endedAt); p = c(buf, p, L24); }
    p = w(buf, p, a.error === null ? 'null}' : j(a.error) + '}');
  }
  p = c(buf, p, L25); p = n(buf, p, num(r.maxAttempts));
  p = c(buf, p, L26); p = w(buf, p, value(r.result));
  if (r.error === null && r.retryOf === null && r.event === null) p = c(buf, p, L27);
  else {
    p = c(buf, p, L28); p = w(buf, p, j(r.error));
    p = c(buf, p, L29); p = w(buf, p, j(r.retryOf));
    p = c(buf, p, L30); p = w(buf, p, j(r.event));
  }
  if (r.after) { p = c(buf, p, L31); p = w(buf, p, r.after.runId); p = c(buf, p, L1); p = w(buf, p, r.after.job); p = c(buf, p, L32); }
  if (r.origin !== undefined) { p = c(buf, p, L33); p = w(buf, p, r.origin); p = c(buf, p, L13); }
  if (r.host !== undefined) {
    if (r.host !== lastHost) { lastHost = r.host; lastHostJson = j(r.host); }
    p = c(buf, p, L34); p = w(buf, p, lastHostJson);
  }
  if (r.traceparent !== undefined) {
    if (r.traceId == null) p = c(buf, p, L35);
    else { p = c(buf, p, L36); p = w(buf, p, r.traceId); p = c(buf, p, L13); }
    p = c(buf, p, L37); p = w(buf, p, r.traceparent); p = c(buf, p, L13);
  }
  return c(buf, p, L38);
}

/** A history segment's line: the run, a newline. */
export const segmentLine = (buf: Buffer, p: number, r: Run): number => c(buf, encodeRun(buf, p, r), NEWLINE);

/** A journal's line: `{"r":<run>}`, a newline. */
export const journalLine = (buf: Buffer, p: number, r: Run): number => c(buf, encodeRun(buf, c(buf, p, JOURNAL_OPEN), r), JOURNAL_CLOSE);

/** Appends `run`'s line to a segment (`journal` false) or a journal, encoded in place when it fits. */
export function appendRun(file: AppendFile, run: Run, journal: boolean): void {
  if (journal ? file.appendEncoded(ROOM, journalLine, run) : file.appendEncoded(ROOM, segmentLine, run)) return;
  file.append(journal ? '{"r":' + serializeRun(run, '}\n') : serializeRun(run, '\n'));
}
