import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../contract/logger.js';
import type { Run } from '../contract/run.js';
import { isLogLine, LogTail, type RunLog } from '../contract/run-log.js';
import { AppendFile } from './files.js';

/**
 * The local backend's run logs. An unfinished run's lines live in memory as a bounded `LogTail`,
 * journaled batch by batch (`{ l: runId, log }`) and kept in checkpoints, so a restart finds them.
 * When the run's final record goes to history segment n, its whole log goes, in the same commit,
 * as one line `{ id, job, log }` to `segments/<n>.logs.ndjson` beside it, and leaves memory. A
 * read of a finished run's log reads that one file, found through the run's segment; retention
 * drops the file with its segment. Logs are diagnostics: a line that does not read back is skipped.
 */

export interface RunLogStoreOptions {
  /** null: finished runs' logs stay in memory, for the newest `keepRuns` runs. */
  dir: string | null;
  fsync: boolean;
  keepRuns: number;
  logger: Logger;
}

/** `segments/<n>.logs.ndjson`: the logs of the runs whose final record is in segment n. */
export function segmentLogsPath(dir: string, n: number): string {
  return path.join(dir, 'segments', `${n}.logs.ndjson`);
}

/** A batch waiting for the journal. */
interface Batch {
  runId: string;
  log: RunLog;
}

export class RunLogStore {
  readonly #o: RunLogStoreOptions;
  /** Logs of unfinished runs. */
  readonly #live = new Map<string, LogTail>();
  #batches: Batch[] = [];
  /** Finished runs whose log is not yet durable in a logs file (retried after a failed write). */
  readonly #finished = new Map<string, { job: string; log: RunLog }>();
  /** Without a directory: finished runs' logs, oldest first. */
  readonly #memory = new Map<string, RunLog>();
  #file: AppendFile | undefined;
  #fileN = 0;

  constructor(options: RunLogStoreOptions) {
    this.#o = options;
  }

  /** Adds lines to an unfinished run's log (the caller checks that it is unfinished). */
  append(runId: string, log: RunLog): void {
    const tail = this.#tail(runId);
    tail.add(log.lines);
    tail.countDropped(log.dropped);
    if (this.#o.dir !== null) this.#batches.push({ runId, log });
  }

  #tail(runId: string): LogTail {
    let tail = this.#live.get(runId);
    if (!tail) this.#live.set(runId, (tail = new LogTail()));
    return tail;
  }

  // ------------------------------------------------------------------ loading

  /** From a checkpoint: the logs of the runs that were unfinished then. */
  restore(logs: Record<string, unknown> | undefined): void {
    for (const [runId, log] of Object.entries(logs ?? {})) this.apply(runId, log);
  }

  /** A journaled batch (or a checkpoint's log): lines that do not read as lines are skipped. */
  apply(runId: string, log: unknown): void {
    const value = log as Partial<RunLog> | null;
    const lines = Array.isArray(value?.lines) ? value.lines.filter(isLogLine) : [];
    const tail = this.#tail(runId);
    tail.add(lines);
    tail.countDropped(typeof value?.dropped === 'number' ? value.dropped : 0);
  }

  /**
   * After loading: the logs of runs that are no longer unfinished go. A run that finished before the
   * crash had its log written beside its final record in the same commit.
   */
  keepOnly(unfinished: (runId: string) => boolean): void {
    for (const runId of [...this.#live.keys()]) if (!unfinished(runId)) this.#live.delete(runId);
  }

  /** For a checkpoint: the logs of unfinished runs. */
  snapshot(): Record<string, RunLog> {
    const out: Record<string, RunLog> = {};
    for (const [runId, tail] of this.#live) out[runId] = tail.toJSON();
    return out;
  }

  // ------------------------------------------------------------------ commits

  /** Journal lines for the batches appended since the last commit (handed back with `requeue` if it fails). */
  takeJournal(): { lines: string[]; batches: Batch[] } {
    const batches = this.#batches;
    this.#batches = [];
    return { lines: batches.map((b) => JSON.stringify({ l: b.runId, log: b.log }) + '\n'), batches };
  }

  requeue(batches: Batch[]): void {
    this.#batches.unshift(...batches);
  }

  /** Runs whose final record is in this commit: their logs leave the unfinished set. */
  finish(runs: readonly Run[]): void {
    for (const run of runs) {
      const tail = this.#live.get(run.id);
      if (!tail) continue;
      this.#live.delete(run.id);
      if (this.#o.dir === null) this.#remember(run.id, tail.toJSON());
      else this.#finished.set(run.id, { job: run.job, log: tail.toJSON() });
    }
  }

  #remember(runId: string, log: RunLog): void {
    this.#memory.set(runId, log);
    for (const oldest of this.#memory.keys()) {
      if (this.#memory.size <= this.#o.keepRuns) break;
      this.#memory.delete(oldest);
    }
  }

  /**
   * Appends the finished runs' logs to segment n's logs file; returns its commit, which a caller
   * runs beside the segment's. A failed write leaves them to the next commit.
   */
  async stage(n: number): Promise<() => Promise<void>> {
    if (this.#finished.size === 0 || this.#o.dir === null) return async () => undefined;
    const file = await this.#open(n);
    const written = [...this.#finished];
    for (const [id, { job, log }] of written) file.append(JSON.stringify({ id, job, log }) + '\n');
    return async () => {
      await file.commit();
      for (const [id, entry] of written) if (this.#finished.get(id) === entry) this.#finished.delete(id);
    };
  }

  async #open(n: number): Promise<AppendFile> {
    if (this.#file && this.#fileN === n) return this.#file;
    const file = new AppendFile(segmentLogsPath(this.#o.dir!, n), { fsync: this.#o.fsync });
    await file.open();
    // A torn last line (a crash mid-append) must not swallow the next record: start on a new line.
    if (file.size > 0) {
      const text = await readFile(file.file);
      if (text.at(-1) !== 10) file.append('\n');
    }
    await this.#file?.close();
    this.#file = file;
    this.#fileN = n;
    return file;
  }

  async close(): Promise<void> {
    await this.#file?.close();
    this.#file = undefined;
  }

  // ------------------------------------------------------------------ reading

  /**
   * A run's log: from memory while it is unfinished (or not yet written), else from the logs file of
   * its segment (`segment`: where history has its final record, undefined when it has none).
   */
  async get(runId: string, segment: () => Promise<number | undefined>): Promise<RunLog | undefined> {
    const live = this.#live.get(runId);
    if (live) return live.toJSON();
    const pending = this.#finished.get(runId);
    if (pending) return structuredClone(pending.log);
    if (this.#o.dir === null) {
      const kept = this.#memory.get(runId);
      return kept && structuredClone(kept);
    }
    const n = await segment();
    if (n === undefined) return undefined;
    // Normally segment n's file; after a failed write, the log may sit a segment or two away.
    for (const k of [n, n + 1, n - 1, n + 2, n - 2]) {
      const found = k > 0 ? await this.#read(k, runId) : undefined;
      if (found) return found;
    }
    return undefined;
  }

  async #read(n: number, runId: string): Promise<RunLog | undefined> {
    let buf: Buffer;
    try {
      buf = await readFile(segmentLogsPath(this.#o.dir!, n));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    // Each line starts with its run's id: find it without parsing the file.
    const prefix = `{"id":${JSON.stringify(runId)},`;
    let tail: LogTail | undefined;
    for (let at = buf.indexOf(prefix); at !== -1; at = buf.indexOf(prefix, at + 1)) {
      if (at > 0 && buf[at - 1] !== 10) continue;
      const end = buf.indexOf(10, at);
      let record: { log?: unknown };
      try {
        record = JSON.parse(buf.toString('utf8', at, end === -1 ? buf.length : end)) as { log?: unknown };
      } catch {
        this.#o.logger.warn({ file: segmentLogsPath(this.#o.dir!, n), runId }, 'a line of a logs file does not read; skipped');
        continue;
      }
      const log = record.log as Partial<RunLog> | undefined;
      const lines = Array.isArray(log?.lines) ? log.lines.filter(isLogLine) : [];
      tail ??= new LogTail();
      tail.add(lines);
      // Copies of one log (a write retried) carry the same count: take the largest, not the sum.
      const dropped = typeof log?.dropped === 'number' ? log.dropped : 0;
      if (dropped > tail.dropped) tail.countDropped(dropped - tail.dropped);
    }
    return tail?.toJSON();
  }
}
