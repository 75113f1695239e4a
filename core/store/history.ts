import { readdir, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Run, RunQuery, RunStatus } from '../contract/run.js';
import { AppendFile, NdjsonFile, type NdjsonRead, parseNdjsonInSlices, readStoreFile } from './files.js';
import { Newest } from './live-runs.js';
import { segmentLogsPath } from './run-logs.js';
import type { DamageFound } from './store-damage.js';
import { checkWith, segmentLine } from './store-records.js';

/**
 * Finished runs, in segments: `segments/<n>.ndjson`, one run per line, appended to the open
 * segment and immutable once it is full. Each sealed segment has a small summary (id range, jobs,
 * statuses) in the checkpoint's index, so a history page reads only the segments that can hold
 * it, and retention drops whole segments. With no directory, segments live in memory.
 */

export interface SegmentInfo {
  n: number;
  count: number;
  minId: string;
  maxId: string;
  maxEndedAt: string;
  jobs: Record<string, number>;
  statuses: Partial<Record<RunStatus, number>>;
}

interface Segment {
  info: SegmentInfo;
  /** The parsed runs while in memory (always for the open segment). */
  runs: Run[] | undefined;
}

export interface HistoryOptions {
  dir: string | null;
  fsync: boolean;
  segmentSize: number;
  keepRuns: number;
  keepDaysMs: number;
  clock: Clock;
  logger: Logger;
  /** Called with damage found in a segment (not a torn tail), before the file is changed. */
  onDamage(found: DamageFound): Promise<void>;
}

const SEGMENT_CACHE = 4;
/** Lines checked per slice of the background read: ~100 × 4 µs, well under a millisecond. */
const SCRUB_SLICE = 100;
const checkSegmentLine = checkWith(segmentLine);

function emptyInfo(n: number): SegmentInfo {
  return { n, count: 0, minId: '', maxId: '', maxEndedAt: '', jobs: {}, statuses: {} };
}

function addToInfo(info: SegmentInfo, run: Run): void {
  if (info.count === 0 || run.id < info.minId) info.minId = run.id;
  if (info.count === 0 || run.id > info.maxId) info.maxId = run.id;
  if (run.endedAt && run.endedAt > info.maxEndedAt) info.maxEndedAt = run.endedAt;
  info.count++;
  info.jobs[run.job] = (info.jobs[run.job] ?? 0) + 1;
  info.statuses[run.status] = (info.statuses[run.status] ?? 0) + 1;
}

export class History {
  readonly #o: HistoryOptions;
  #open: Segment = { info: emptyInfo(1), runs: [] };
  /** Lines in the open segment's file, damaged ones included: where the next run's line goes. */
  #openLines = 0;
  readonly #sealed: Segment[] = [];
  readonly #cache: Segment[] = [];
  /** Segments dropped by retention; deleted once a checkpoint no longer lists them. */
  readonly #expired: number[] = [];
  #file: AppendFile | undefined;
  /** The next segment's file, created ahead so sealing never waits for a new file on the disk. */
  #next: Promise<AppendFile> | undefined;

  constructor(options: HistoryOptions) {
    this.#o = options;
  }

  /** The open segment's file, where a commit appends finished runs (undefined without a dir). */
  get file(): AppendFile | undefined {
    return this.#file;
  }

  /** Where the next finished run goes: for a checkpoint's fold marker. */
  get position(): { segment: number; line: number } {
    return { segment: this.#open.info.n, line: this.#openLines };
  }

  index(): SegmentInfo[] {
    return this.#sealed.map((s) => s.info);
  }

  count(): number {
    return this.#open.info.count + this.#sealed.reduce((sum, s) => sum + s.info.count, 0);
  }

  segments(): number {
    return this.#sealed.length + 1;
  }

  #path(n: number): string {
    return path.join(this.#o.dir as string, 'segments', `${n}.ndjson`);
  }

  /**
   * Opens the history on disk: the segments in the checkpoint's index, plus any newer segment
   * file, which is read so `visit` sees each run in it (`afterMark`: it comes after the
   * checkpoint's fold marker). A torn tail is dropped and truncated away; damage (a damaged last
   * line included) goes to `onDamage` first, while the file is as it was found, and stays in it.
   * The marker is where the open segment ended when the checkpoint was written: its lines before
   * that were durable then, so one of them missing or torn (the file cut short, or gone) is damage.
   */
  async load(indexed: SegmentInfo[], mark: { segment: number; line: number } | undefined, visit: (run: Run, afterMark: boolean) => void): Promise<void> {
    const dir = path.join(this.#o.dir as string, 'segments');
    const files = (await readdir(dir))
      .map((f) => /^(\d+)\.ndjson$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const onDisk = new Set(files);
    const known = new Set(indexed.map((i) => i.n));
    for (const info of indexed) {
      if (onDisk.has(info.n)) this.#sealed.push({ info, runs: undefined });
      // Deleted from outside: reported as damage; the next checkpoint's index leaves it out.
      else await this.#o.onDamage({ kind: 'segment', n: info.n, file: this.#path(info.n), bad: [], missing: info.count, absent: true });
    }
    const from = mark ?? { segment: Infinity, line: 0 };
    if (from.line > 0 && !onDisk.has(from.segment) && !known.has(from.segment)) {
      await this.#o.onDamage({ kind: 'segment', n: from.segment, file: this.#path(from.segment), bad: [], missing: from.line, absent: true });
    }
    const last = files.at(-1);
    for (const n of files) {
      if (known.has(n)) continue;
      const file = this.#path(n);
      const adapter = new NdjsonFile<Run>(file, { fsync: this.#o.fsync, check: checkSegmentLine });
      const runs = (await adapter.read()) ?? [];
      const read = adapter.last;
      const damaged = read.bad.filter((b) => !b.torn);
      if (damaged.length > 0) await this.#o.onDamage({ kind: 'segment', n, file, bad: damaged, missing: 0 });
      // Lines the marker counts were durable at the checkpoint: no crash since can tear them, so
      // the file was cut short. Its own report: the torn part is truncated away below, never found
      // again, while damaged lines stay and are found again with the same id.
      const durable = n === from.segment ? from.line : 0;
      const cut = read.bad.filter((b) => b.torn && b.line <= durable);
      const missing = Math.max(0, durable - read.total);
      if (cut.length > 0 || missing > 0) await this.#o.onDamage({ kind: 'segment', n, file, bad: cut, missing });
      const torn = read.bad.length - damaged.length - cut.length;
      if (torn > 0) {
        this.#o.logger.warn(
          { code: 'STORE_CORRUPT', file, tornLines: torn },
          'dropped a torn tail (an interrupted write; expected after a crash, never acknowledged)',
        );
      }
      const info = emptyInfo(n);
      for (const [i, run] of runs.entries()) {
        addToInfo(info, run);
        // By line in the file, as the marker counts: a damaged line before it still takes its place.
        const line = read.lines[i]!;
        visit(run, n > from.segment || (n === from.segment && line >= from.line));
      }
      if (n === last && runs.length < this.#o.segmentSize) {
        this.#open = { info, runs };
        this.#openLines = read.goodLines;
        this.#file = new AppendFile(file, { fsync: this.#o.fsync });
        await this.#file.open(read.goodBytes);
      } else if (runs.length > 0) {
        // Sealed with a torn tail (its successor was already created): cut the tail now, or a
        // later read of the indexed segment would take it for damage.
        if (torn + cut.length > 0) await truncate(file, read.goodBytes);
        this.#sealed.push({ info, runs: undefined });
      } else {
        await rm(file, { force: true });
      }
    }
    this.#sealed.sort((a, b) => a.info.n - b.info.n);
    if (!this.#file) {
      const n = Math.max(last ?? 0, this.#sealed.at(-1)?.info.n ?? 0) + 1;
      this.#open = { info: emptyInfo(n), runs: [] };
      this.#openLines = 0;
      this.#file = new AppendFile(this.#path(n), { fsync: this.#o.fsync });
      await this.#file.open();
    }
    this.#applyRetention();
  }

  /** The oldest segment still kept (sealed or open): damage reports of older ones can go. */
  get oldestSegment(): number {
    return this.#sealed[0]?.info.n ?? this.#open.info.n;
  }

  /** Records runs whose final lines are durable in the open segment; seals it when full. */
  async add(finished: readonly Run[]): Promise<void> {
    for (const run of finished) {
      this.#open.runs?.push(run);
      addToInfo(this.#open.info, run);
    }
    this.#openLines += finished.length;
    // Half full: create the next file now (its directory entry fsynced), off the commit path.
    if (this.#o.dir !== null && !this.#next && this.#open.info.count * 2 >= this.#o.segmentSize) {
      const next = new AppendFile(this.#path(this.#open.info.n + 1), { fsync: this.#o.fsync });
      this.#next = next.open().then(() => next);
      this.#next.catch(() => undefined); // awaited (and reported) at the seal
    }
    // Sealed after the batch: every run written to this segment's file is counted in its info.
    if (this.#open.info.count >= this.#o.segmentSize) {
      try {
        await this.#seal();
      } catch (err) {
        // What was written is durable: the segment just stays open a while longer.
        this.#o.logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'could not start the next history segment; retrying at the next commit');
      }
    }
  }

  async #seal(): Promise<void> {
    const sealed = this.#open;
    const n = sealed.info.n + 1;
    if (this.#o.dir !== null) {
      const next =
        this.#next ??
        (async () => {
          const file = new AppendFile(this.#path(n), { fsync: this.#o.fsync });
          await file.open();
          return file;
        })();
      this.#next = undefined;
      const file = await next; // a failure leaves the open segment open, to be retried
      const old = this.#file;
      this.#file = file;
      // Closed off the commit's path (its acknowledgements wait for this): every write to it is
      // done, commits never overlap, and segments are read by path, not through this handle.
      old?.close().catch((err: unknown) => this.#o.logger.warn({ err, file: old.file }, 'could not close a sealed history segment'));
    }
    this.#sealed.push(sealed);
    this.#remember(sealed);
    this.#open = { info: emptyInfo(n), runs: [] };
    this.#openLines = 0;
    this.#applyRetention();
  }

  /** Drops whole sealed segments beyond keepRuns (keeping at least keepRuns) and older than keepDays. */
  #applyRetention(): void {
    let total = this.count();
    const cutoff = this.#o.keepDaysMs > 0 ? new Date(this.#o.clock.now() - this.#o.keepDaysMs).toISOString() : '';
    while (this.#sealed.length > 0) {
      const oldest = this.#sealed[0]!;
      const tooMany = total - oldest.info.count >= this.#o.keepRuns;
      const tooOld = cutoff !== '' && oldest.info.maxEndedAt !== '' && oldest.info.maxEndedAt < cutoff;
      if (!tooMany && !tooOld) break;
      this.#sealed.shift();
      total -= oldest.info.count;
      const cached = this.#cache.indexOf(oldest);
      if (cached >= 0) this.#cache.splice(cached, 1);
      if (this.#o.dir !== null) this.#expired.push(oldest.info.n);
    }
  }

  /** Deletes expired segment files, and the logs of their runs: call once a checkpoint without them is durable. */
  async deleteExpired(): Promise<void> {
    for (const n of this.#expired.splice(0)) {
      for (const file of [this.#path(n), segmentLogsPath(this.#o.dir!, n)]) {
        await rm(file, { force: true }).catch((err: unknown) => this.#o.logger.warn({ err, segment: n }, 'could not delete an expired segment'));
      }
    }
  }

  async close(): Promise<void> {
    await this.#file?.close();
    // An unused next file is empty; it is removed on the next load.
    await (await this.#next?.catch(() => undefined))?.close();
  }

  // ---------------------------------------------------------------- reading

  async find(id: string): Promise<Run | undefined> {
    return (await this.#locate(id))?.run;
  }

  /** The number of the segment that holds run `id`, if any. */
  async segmentOf(id: string): Promise<number | undefined> {
    return (await this.#locate(id))?.n;
  }

  async #locate(id: string): Promise<{ run: Run; n: number } | undefined> {
    const open = this.#open.runs?.find((r) => r.id === id);
    if (open) return { run: open, n: this.#open.info.n };
    for (let i = this.#sealed.length - 1; i >= 0; i--) {
      const seg = this.#sealed[i]!;
      if (id < seg.info.minId || id > seg.info.maxId) continue;
      const hit = (await this.#runsOf(seg)).find((r) => r.id === id);
      if (hit) return { run: hit, n: seg.info.n };
    }
    return undefined;
  }

  /**
   * A page of runs, newest first by id, from `live` (unfinished runs before the cursor, newest
   * first: read only until the page is full) and the segments that can hold it.
   */
  async page(live: Iterable<Run>, query: RunQuery): Promise<{ items: Run[]; more: boolean }> {
    const limit = Math.max(1, Math.min(query.limit ?? 50, 1000));
    const { before, job, status } = query;
    const match = (r: Run): boolean =>
      (before === undefined || r.id < before) && (job === undefined || r.job === job) && (status === undefined || r.status === status);
    // Keep the `limit + 1` newest matches; the extra one tells whether a next page exists.
    const best = new Newest(limit + 1);
    let fromLive = 0;
    for (const r of live) {
      if (!match(r)) continue;
      best.add(r);
      if (++fromLive > limit) break;
    }
    const consider = (runs: Iterable<Run>): void => {
      for (const r of runs) if (match(r)) best.add(r);
    };
    consider(this.#open.runs ?? []);
    // Newest segments first; stop once no older segment can hold a run newer than the page's last.
    for (const seg of [...this.#sealed].sort((a, b) => (a.info.maxId < b.info.maxId ? 1 : -1))) {
      const floor = best.floor();
      if (floor !== undefined && seg.info.maxId < floor) break;
      if (before !== undefined && seg.info.minId >= before) continue;
      if (job !== undefined && !seg.info.jobs[job]) continue;
      if (status !== undefined && !seg.info.statuses[status]) continue;
      consider(await this.#runsOf(seg));
    }
    const items = best.items();
    return { items: items.slice(0, limit), more: items.length > limit };
  }

  async #runsOf(seg: Segment): Promise<Run[]> {
    if (seg.runs) return seg.runs;
    seg.runs = await this.#read(seg);
    this.#remember(seg);
    return seg.runs;
  }

  /** Reads a sealed segment; damage in it goes to `onDamage`. `sliced`: in the background, a slice of lines at a time. */
  async #read(seg: Segment, sliced = false): Promise<Run[]> {
    const file = this.#path(seg.info.n);
    let read: NdjsonRead<Run>;
    if (sliced) {
      let buf: Buffer;
      try {
        buf = await readStoreFile(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        buf = Buffer.alloc(0);
      }
      read = await parseNdjsonInSlices<Run>(buf, checkSegmentLine, SCRUB_SLICE);
    } else {
      const adapter = new NdjsonFile<Run>(file, { fsync: this.#o.fsync, check: checkSegmentLine });
      await adapter.read();
      read = adapter.last;
    }
    const runs = read.items;
    // Every line of a sealed segment was durable when it was indexed: any bad or missing one is
    // damage, a bad last line included. Not so for a segment retention dropped meanwhile.
    const missing = Math.max(0, seg.info.count - runs.length - read.bad.length);
    if ((read.bad.length > 0 || missing > 0) && this.#sealed.includes(seg)) {
      await this.#o.onDamage({ kind: 'segment', n: seg.info.n, file, bad: read.bad, missing });
    }
    return runs;
  }

  /**
   * Reads every sealed segment once, in the background after a start, so damage in history that
   * no page has asked for yet is found and reported now, not when someone scrolls back to it.
   * A slice of lines at a time (checking a line costs a few µs), so schedules and requests are
   * never held up by more than a millisecond or two; `stop()` ends it early.
   */
  async scrub(stop: () => boolean): Promise<void> {
    for (const seg of [...this.#sealed]) {
      await new Promise((resolve) => setImmediate(resolve));
      if (stop()) return;
      if (seg.runs || !this.#sealed.includes(seg)) continue; // a cached segment was checked when it was read
      await this.#read(seg, true);
    }
  }

  /** Keeps a few sealed segments parsed in memory (all of them when there is no disk). */
  #remember(seg: Segment): void {
    if (this.#o.dir === null) return;
    const i = this.#cache.indexOf(seg);
    if (i >= 0) this.#cache.splice(i, 1);
    this.#cache.push(seg);
    while (this.#cache.length > SEGMENT_CACHE) this.#cache.shift()!.runs = undefined;
  }
}
