import { constants } from 'node:fs';
import { type FileHandle, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Adapter } from 'lowdb';
import { HostError } from '../contract/errors.js';
import { AppendBuffer, rest } from './append-buffer.js';

/**
 * The store's file primitives: lowdb adapters that fsync, and an append-only file with group
 * commit support. Every replaced file goes temp → fsync → rename → fsync(dir), so a kill -9 at any
 * moment leaves either the old or the new file, never a torn one.
 */

/** fsync a directory so a rename or a newly created file survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } finally {
    await handle?.close();
  }
}

/**
 * `err` with `file` as its `path` when it has none: a read of a directory (EISDIR) or a write
 * through an open handle (ENOSPC) names no file, unlike every other fs call.
 */
export function withPath(err: unknown, file: string): unknown {
  if (err instanceof Error && 'code' in err && (err as NodeJS.ErrnoException).path === undefined) (err as NodeJS.ErrnoException).path = file;
  return err;
}

/** `readFile` of a store file; its error names the file (see `withPath`). */
export async function readStoreFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw withPath(err, file);
  }
}

/** A path as a message shows it: relative to the working directory (the host's) when inside it. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  if (rel === '') return '.';
  return rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

/** Writes `text` to `file` atomically and durably. */
export function writeFileDurable(file: string, text: string, fsync: boolean): Promise<void> {
  return writeThroughTemp(file, (handle) => handle.writeFile(text, 'utf8'), fsync);
}

/**
 * Writes the text `parts` yields to `file`, atomically and durably as `writeFileDurable`, a part
 * at a time: a large document (a checkpoint with 100,000 waiting runs) is never one string, and
 * between parts the event loop serves everything else.
 */
export function writePartsDurable(file: string, parts: AsyncIterable<string>, fsync: boolean): Promise<void> {
  return writeThroughTemp(
    file,
    async (handle) => {
      for await (const part of parts) await handle.write(part, null, 'utf8');
    },
    fsync,
  );
}

/** A temp file of `writeThroughTemp`, `.<name>.<pid>.tmp`: left behind by a process that died mid-write (or could not remove it). */
const TEMP_FILE = /^\..+\.\d+\.tmp$/;

/**
 * temp → fsync → rename → fsync(dir). A write that fails (a full disk) removes its partial temp
 * file, as far as it can, and throws the write's error.
 */
async function writeThroughTemp(file: string, write: (handle: FileHandle) => Promise<void>, fsync: boolean): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const handle = await open(temp, 'w');
    try {
      await write(handle);
      if (fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw withPath(err, file);
  }
  if (fsync) await syncDir(path.dirname(file));
}

/**
 * Removes the temp files durable writes left in `dir` (a crash mid-write, or a removal that failed
 * too). Only for the directory's one writer (the store's lock holder): another process's temp
 * file may be a write in progress. Answers the names removed, and those that could not be.
 */
export async function removeTempFiles(dir: string): Promise<{ removed: string[]; failed: Array<{ file: string; err: unknown }> }> {
  const removed: string[] = [];
  const failed: Array<{ file: string; err: unknown }> = [];
  for (const name of await readdir(dir)) {
    if (!TEMP_FILE.test(name)) continue;
    try {
      await rm(path.join(dir, name), { force: true });
      removed.push(name);
    } catch (err) {
      failed.push({ file: name, err });
    }
  }
  return { removed, failed };
}

/** A lowdb adapter for one JSON document, written atomically with fsync (lowdb's JSONFile has no fsync). */
export class DurableJsonFile<T> implements Adapter<T> {
  readonly file: string;
  readonly #fsync: boolean;

  constructor(file: string, options: { fsync: boolean }) {
    this.file = file;
    this.#fsync = options.fsync;
  }

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = (await readStoreFile(this.file)).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new HostError('STORE_DAMAGED', `${this.file}: not valid JSON (${(err as Error).message})`, { file: this.file });
    }
  }

  write(data: T): Promise<void> {
    return writeFileDurable(this.file, JSON.stringify(data), this.#fsync);
  }
}

/** A line of an NDJSON file that did not load. */
export interface BadLine {
  /** 1-based line number. */
  line: number;
  /** The start of the line as it is on disk, to tell what it held. */
  text: string;
  /**
   * Part of the torn tail an interrupted append leaves, not damage: after the last readable line,
   * and either unterminated or holding NUL bytes (see `parseNdjson`).
   */
  torn: boolean;
}

export interface NdjsonRead<T> {
  items: T[];
  /** The 0-based line number of each item (items skip unreadable lines, line numbers do not). */
  lines: number[];
  /** Bytes up to the torn tail: the end of the last complete line that is readable or damaged. */
  goodBytes: number;
  /** Lines within `goodBytes`. */
  goodLines: number;
  /** Lines that did not load (a torn tail from a crash, or damage). */
  badLines: number;
  /** Each line that did not load, in order. */
  bad: BadLine[];
  /** Lines in the file, counting a last line without its newline. */
  total: number;
}

/** Checks that a parsed line is a record of the file's kind (a zod schema's `safeParse(v).success`). */
export type LineCheck = (value: unknown) => boolean;

/**
 * A lowdb adapter for newline-delimited JSON: one record per line. Reading tolerates a torn tail
 * (an interrupted append) and skips damaged lines, reporting both; writing replaces the
 * whole file atomically.
 */
export class NdjsonFile<T> implements Adapter<T[]> {
  readonly file: string;
  readonly #fsync: boolean;
  readonly #check: LineCheck | undefined;
  last: NdjsonRead<T> = { items: [], lines: [], goodBytes: 0, goodLines: 0, badLines: 0, bad: [], total: 0 };

  constructor(file: string, options: { fsync: boolean; check?: LineCheck | undefined }) {
    this.file = file;
    this.#fsync = options.fsync;
    this.#check = options.check;
  }

  async read(): Promise<T[] | null> {
    let buf: Buffer;
    try {
      buf = await readStoreFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    this.last = parseNdjson<T>(buf, this.#check);
    return this.last.items;
  }

  write(items: T[]): Promise<void> {
    let text = '';
    for (const item of items) text += JSON.stringify(item) + '\n';
    return writeFileDurable(this.file, text, this.#fsync);
  }
}

/** How much of a bad line is kept to describe it: enough for a run's id, job and status. */
const BAD_TEXT = 400;

/**
 * Parses NDJSON. A line that is not JSON, or fails `check`, is bad. The torn tail of an
 * interrupted append (expected after a crash) is the bad lines at the end of the file, after the
 * last good one, that are unterminated or hold NUL bytes: an append is whole lines, so a crash
 * can leave a line without its newline, or zero-filled blocks (ext4 and others extend the size
 * before the data reaches the disk). Any other bad line is damage, wherever it is — a complete,
 * newline-terminated last line too (as Redis: an incomplete last AOF entry is truncated, a
 * malformed one is corruption). `goodBytes` keeps damaged lines, so only the tear is cut off.
 */
export function parseNdjson<T>(buf: Buffer, check?: LineCheck): NdjsonRead<T> {
  const parser = new NdjsonParser<T>(buf, check);
  parser.run(Infinity);
  return parser.result();
}

/** The same, a slice of lines at a time with the event loop free in between: for background reads. */
export async function parseNdjsonInSlices<T>(buf: Buffer, check: LineCheck | undefined, linesPerSlice: number): Promise<NdjsonRead<T>> {
  const parser = new NdjsonParser<T>(buf, check);
  while (!parser.run(linesPerSlice)) await new Promise((resolve) => setImmediate(resolve));
  return parser.result();
}

class NdjsonParser<T> {
  readonly #buf: Buffer;
  readonly #check: LineCheck | undefined;
  readonly #items: T[] = [];
  readonly #lines: number[] = [];
  readonly #bad: BadLine[] = [];
  #goodBytes = 0;
  #goodLines = 0;
  #start = 0;
  #line = 0;
  /** Bad lines from this index on have no good line after them (yet). */
  #tornFrom = 0;
  /** For each bad line: the offset after it (its newline included), and whether a crash can leave it (unterminated, or with NUL bytes). */
  readonly #badEnd: number[] = [];
  readonly #tearable: boolean[] = [];

  constructor(buf: Buffer, check: LineCheck | undefined) {
    this.#buf = buf;
    this.#check = check;
  }

  /** Parses up to `maxLines` more lines; true once the whole buffer is done. */
  run(maxLines: number): boolean {
    const buf = this.#buf;
    for (let n = 0; n < maxLines && this.#start < buf.length; n++) {
      const start = this.#start;
      const nl = buf.indexOf(10, start);
      const end = nl === -1 ? buf.length : nl;
      if (end > start) {
        let value: unknown;
        let ok = false;
        if (nl !== -1) {
          try {
            value = JSON.parse(buf.toString('utf8', start, end));
            ok = this.#check === undefined || this.#check(value);
          } catch {
            ok = false;
          }
        }
        if (ok) {
          this.#items.push(value as T);
          this.#lines.push(this.#line);
          this.#goodBytes = end + 1;
          this.#goodLines = this.#line + 1;
          this.#tornFrom = this.#bad.length;
        } else {
          this.#bad.push({ line: this.#line + 1, text: buf.toString('utf8', start, Math.min(end, start + BAD_TEXT)), torn: false });
          this.#badEnd.push(nl === -1 ? end : end + 1);
          const nul = buf.indexOf(0, start);
          this.#tearable.push(nl === -1 || (nul !== -1 && nul < end));
        }
      } else if (nl !== -1 && this.#tornFrom === this.#bad.length) {
        this.#goodBytes = end + 1;
        this.#goodLines = this.#line + 1;
      }
      this.#line++;
      this.#start = end + 1;
    }
    return this.#start >= buf.length;
  }

  result(): NdjsonRead<T> {
    const bad = this.#bad;
    // The tear is the longest run of tearable lines at the very end; a complete line without NUL
    // bytes before it (or last) is damage, and stays in the file up to `goodBytes`.
    let from = bad.length;
    while (from > this.#tornFrom && this.#tearable[from - 1]) from--;
    for (let i = from; i < bad.length; i++) bad[i]!.torn = true;
    let goodBytes = this.#goodBytes;
    let goodLines = this.#goodLines;
    if (from > this.#tornFrom) {
      goodBytes = this.#badEnd[from - 1]!;
      goodLines = bad[from - 1]!.line;
    }
    return { items: this.#items, lines: this.#lines, goodBytes, goodLines, badLines: bad.length, bad, total: this.#line };
  }
}

/** Undefined where the platform lacks it (Windows), whatever @types/node says. */
const O_DSYNC = constants.O_DSYNC as number | undefined;

/**
 * An append-only file. `append()` only encodes into a buffer; `commit()` writes everything
 * appended in one synced write, which is how many callers share one disk flush
 * (group commit). A failed write is truncated back, so a retry never leaves a torn record in
 * the middle. Appends made while a commit is on the disk go to fresh chunks (append-buffer.ts).
 */
export class AppendFile {
  readonly file: string;
  readonly #fsync: boolean;
  #handle: FileHandle | undefined;
  #size = 0;
  readonly #pending = new AppendBuffer();

  constructor(file: string, options: { fsync: boolean }) {
    this.file = file;
    this.#fsync = options.fsync;
  }

  /** Bytes on disk plus bytes appended and not yet committed. */
  get size(): number {
    return this.#size + this.#pending.length;
  }

  /** The open file's descriptor (undefined before `open` and after `close`). */
  get fd(): number | undefined {
    return this.#handle?.fd;
  }

  get pending(): boolean {
    return this.#pending.length > 0;
  }

  /** Opens for appending; `truncateTo` drops a torn tail found when reading the file. */
  async open(truncateTo?: number): Promise<void> {
    let created = false;
    // O_DSYNC: each write returns only once its data (and the size that reaches it) is on disk, as
    // write + fdatasync would, in one trip to the thread pool instead of two. Where the platform
    // has no O_DSYNC (Windows), commit() calls datasync after the write instead.
    const sync = this.#fsync && O_DSYNC !== undefined ? O_DSYNC : 0;
    try {
      this.#handle = await open(this.file, constants.O_RDWR | sync);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.#handle = await open(this.file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | sync);
      created = true;
    }
    try {
      const { size } = await this.#handle.stat();
      this.#size = size;
      if (truncateTo !== undefined && truncateTo < size) {
        await this.#handle.truncate(truncateTo);
        if (this.#fsync) await this.#handle.datasync(); // O_DSYNC covers writes, not truncation
        this.#size = truncateTo;
      }
      if (created && this.#fsync) await syncDir(path.dirname(this.file));
    } catch (err) {
      throw withPath(err, this.file);
    }
  }

  append(text: string): void {
    this.#pending.append(text);
  }

  /** Appends bytes `encode` writes into the buffer directly; false when they did not fit in `most` (see AppendBuffer). */
  appendEncoded<A>(most: number, encode: (buf: Buffer, at: number, arg: A) => number, arg: A): boolean {
    return this.#pending.appendEncoded(most, encode, arg);
  }

  /** Writes and syncs what was appended. */
  async commit(): Promise<void> {
    if (this.#pending.length === 0) return;
    const handle = this.#handle;
    if (!handle) throw new HostError('STORE_WRITE_FAILED', `${this.file}: not open`);
    const { buffers, length, release } = this.#pending.take();
    try {
      let written = 0;
      while (written < length) {
        const { bytesWritten } = await handle.writev(written === 0 ? buffers : rest(buffers, written), this.#size + written);
        written += bytesWritten;
      }
      // With O_DSYNC the write was durable on return; otherwise sync it now.
      if (this.#fsync && O_DSYNC === undefined) await handle.datasync();
      this.#size += length;
    } catch (err) {
      await handle.truncate(this.#size).catch(() => undefined);
      throw new HostError('STORE_WRITE_FAILED', `${this.file}: ${(err as Error).message}`, { file: this.file }, { cause: err });
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  async remove(): Promise<void> {
    await this.close();
    await rm(this.file, { force: true });
  }
}
