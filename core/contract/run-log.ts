/**
 * A run's log: the lines its handler wrote through `ctx.log`, kept with the run. Bounded: the
 * last `LOG_MAX_LINES` lines or `LOG_MAX_BYTES` bytes of them, whichever is smaller; what was cut
 * is counted, so readers can say so. Every backend keeps a run's log with a `LogTail`.
 */

import type { RunStatus } from './run.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** One line of a run's log. `attempt` and `i` (1-based within the attempt) identify it within its run. */
export interface LogLine {
  attempt: number;
  i: number;
  /** ISO time the handler wrote it. */
  at: string;
  level: LogLevel;
  msg: string;
  /** The object logged with the message (`ctx.log.info({ rows: 3 }, 'read')`), if any. */
  fields?: Record<string, unknown>;
}

/** A run's kept lines, oldest first, and how many earlier lines the bound dropped. */
export interface RunLog {
  lines: LogLine[];
  dropped: number;
}

/** `GET /runs/:id/logs`: the run's kept lines with the run's status, and a sentence when lines were cut. */
export interface RunLogView extends RunLog {
  runId: string;
  job: string;
  status: RunStatus;
  note: string | null;
}

/** The most lines kept per run. */
export const LOG_MAX_LINES = 500;
/** The most bytes (of the lines as JSON) kept per run. */
export const LOG_MAX_BYTES = 256 * 1024;
/** A message longer than this is cut (and marked with `…`), so one line cannot take a run's whole budget. */
export const LOG_MAX_MSG = 8 * 1024;
/** `fields` whose JSON is longer than this are replaced by `{ truncated: '<the start of it>…' }`. */
export const LOG_MAX_FIELDS = 8 * 1024;

/** `attempt:i`, unique within a run: to merge lines from the stream with lines read back. */
export const logKey = (line: Pick<LogLine, 'attempt' | 'i'>): string => `${line.attempt}:${line.i}`;

const order = (a: LogLine, b: LogLine): number => a.attempt - b.attempt || a.i - b.i;

/** Bytes a line takes in the bound: its JSON, as it is stored and sent. */
export function lineBytes(line: LogLine): number {
  return Buffer.byteLength(JSON.stringify(line));
}

/**
 * The bounded tail of a run's log: adding a line past the bound drops the oldest ones. Lines
 * added twice (a batch written again after a failed write) are kept once.
 */
export class LogTail {
  #lines: LogLine[] = [];
  #sizes: number[] = [];
  #bytes = 0;
  #dropped: number;
  /** Where the kept lines start in #lines: dropping shifts an index, not the array. */
  #head = 0;
  readonly #keys = new Set<string>();

  constructor(from?: RunLog) {
    this.#dropped = from?.dropped ?? 0;
    if (from) this.add(from.lines);
  }

  get size(): number {
    return this.#lines.length - this.#head;
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** Counts lines cut before they reached this tail (a batch that was over the bound itself). */
  countDropped(n: number): void {
    if (n > 0) this.#dropped += n;
  }

  /** Adds lines (in any order; kept sorted by attempt and number) and applies the bound. */
  add(lines: readonly LogLine[]): void {
    let sorted = true;
    for (const line of lines) {
      const key = logKey(line);
      if (this.#keys.has(key)) continue;
      this.#keys.add(key);
      const last = this.#lines.at(-1);
      if (this.size > 0 && last && order(last, line) > 0) sorted = false;
      const size = lineBytes(line);
      this.#lines.push(line);
      this.#sizes.push(size);
      this.#bytes += size;
    }
    if (!sorted) this.#resort();
    while (this.size > LOG_MAX_LINES || (this.#bytes > LOG_MAX_BYTES && this.size > 0)) {
      this.#bytes -= this.#sizes[this.#head]!;
      this.#keys.delete(logKey(this.#lines[this.#head]!));
      this.#head++;
      this.#dropped++;
    }
    // Compact once the dropped part is as long as the kept part: amortised O(1) per line.
    if (this.#head > 64 && this.#head * 2 > this.#lines.length) this.#compact();
  }

  #compact(): void {
    this.#lines = this.#lines.slice(this.#head);
    this.#sizes = this.#sizes.slice(this.#head);
    this.#head = 0;
  }

  #resort(): void {
    this.#compact();
    const pairs = this.#lines.map((line, k) => ({ line, size: this.#sizes[k]! })).sort((a, b) => order(a.line, b.line));
    this.#lines = pairs.map((p) => p.line);
    this.#sizes = pairs.map((p) => p.size);
  }

  /** A copy of the kept lines and the count of dropped ones. */
  toJSON(): RunLog {
    return { lines: this.#lines.slice(this.#head).map((l) => ({ ...l })), dropped: this.#dropped };
  }
}

/** Reads a stored `RunLog` back: lines that are not lines are skipped (logs are diagnostics, not records). */
export function isLogLine(value: unknown): value is LogLine {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['attempt'] === 'number' &&
    typeof v['i'] === 'number' &&
    typeof v['at'] === 'string' &&
    typeof v['msg'] === 'string' &&
    LOG_LEVELS.includes(v['level'] as LogLevel) &&
    (v['fields'] === undefined || (typeof v['fields'] === 'object' && v['fields'] !== null))
  );
}
