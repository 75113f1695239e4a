/**
 * The bytes appended to a file between two commits, as a list of fixed-size chunks taken from a
 * pool shared by every file of the process. A commit writes the chunks as they are (one writev)
 * and gives them back. One growing buffer would copy everything appended so far each time it
 * doubles, and every new segment or journal file would start small and double again: with a
 * segment every 2,000 runs, those copies were about a tenth of the disk store's CPU per run.
 */

const CHUNK = 256 * 1024;
/** Chunks kept for reuse at most (8 MiB), beyond what the files hold at the moment. */
const POOL_MAX = 32;
const pool: Buffer[] = [];
const EMPTY = Buffer.alloc(0);

function take(min: number): Buffer {
  if (min > CHUNK) return Buffer.allocUnsafe(min); // one huge line: a chunk of its own, not pooled
  return pool.pop() ?? Buffer.allocUnsafe(CHUNK);
}

function give(buf: Buffer): void {
  if (buf.length === CHUNK && pool.length < POOL_MAX) pool.push(buf);
}

/** What one commit takes: the bytes as buffers to write, and `release()` once they are written (or not). */
export interface Taken {
  readonly buffers: Buffer[];
  readonly length: number;
  release(): void;
}

export class AppendBuffer {
  #full: Buffer[] = [];
  #fullLens: number[] = [];
  #fullBytes = 0;
  #buf: Buffer = EMPTY;
  #len = 0;

  /** Bytes appended and not yet taken. */
  get length(): number {
    return this.#fullBytes + this.#len;
  }

  append(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.#room(text.length * 3);
    this.#len += this.#buf.write(text, this.#len);
  }

  /**
   * Appends what `encode` writes straight into the chunk (from `at`; it returns where it stopped),
   * with no string in between. `most` bytes are made free first; an `encode` that needs more
   * returns past the chunk's end (bytes beyond it are dropped by the typed array), and then
   * nothing is kept and this returns false: the caller appends the line as a string instead.
   */
  appendEncoded<A>(most: number, encode: (buf: Buffer, at: number, arg: A) => number, arg: A): boolean {
    this.#room(most);
    const end = encode(this.#buf, this.#len, arg);
    if (end > this.#buf.length) return false;
    this.#len = end;
    return true;
  }

  /** Makes `most` bytes free in the current chunk. */
  #room(most: number): void {
    if (this.#len + most <= this.#buf.length) return;
    if (this.#len > 0) {
      this.#full.push(this.#buf);
      this.#fullLens.push(this.#len);
      this.#fullBytes += this.#len;
    } else if (this.#buf !== EMPTY) give(this.#buf);
    this.#buf = take(most);
    this.#len = 0;
  }

  /** Takes everything appended so far; later appends go to fresh chunks while these are written. */
  take(): Taken {
    const chunks = this.#full;
    const buffers = chunks.map((c, i) => c.subarray(0, this.#fullLens[i]));
    if (this.#len > 0) {
      chunks.push(this.#buf);
      buffers.push(this.#buf.subarray(0, this.#len));
      this.#buf = EMPTY;
    }
    const length = this.#fullBytes + this.#len;
    this.#full = [];
    this.#fullLens = [];
    this.#fullBytes = 0;
    this.#len = 0;
    return { buffers, length, release: () => chunks.forEach(give) };
  }
}

/** `buffers` without their first `skip` bytes (what is left after a short write). */
export function rest(buffers: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}
