import { type Clock, isoTime } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { isFinal, type Page, type Run, type RunQuery } from '../contract/run.js';
import { SERIES_WINDOWS, type Series, type SeriesBucket, type SeriesWindow } from '../contract/views.js';
import type { Bus } from './bus.js';

/**
 * The index behind `GET /stats/series`: runs per time bucket, kept as runs finish, so a series is
 * read from at most a few hundred buckets, whatever the size of history. Per job and for the whole
 * host, one ring of buckets per window (1 min × 60, 15 min × 96, 2 h × 84, plus the one filling).
 * A bucket counts finished runs by status, keeps their durations in a log-scale histogram (bins
 * 4% apart, so p50/p95 are within 2%; exact while a bucket has up to 64 runs), and the backlog at its end. It is fed by the bus (so it
 * sees whatever a backend reports, whichever backend) and, after a start, by history read back
 * in the background, so the charts do not start empty after a restart (without the backlog,
 * which history does not record).
 */

const GAMMA = 1.04;
const LOG_GAMMA = Math.log(GAMMA);
const ALL = '\u0000all';
const RESOLUTIONS = Object.values(SERIES_WINDOWS).map((w) => ({ bucketMs: w.bucketMs, size: w.buckets + 1 }));
const R = RESOLUTIONS.length;

/** The histogram bin of a duration: 0 for under 1 ms, then one bin per factor of 1.04. */
const binOf = (ms: number): number => (ms < 1 ? 0 : 1 + Math.floor(Math.log(ms) / LOG_GAMMA));
/** The middle (geometric) of a bin. */
const binMiddle = (bin: number): number => (bin === 0 ? 0 : GAMMA ** (bin - 0.5));

interface Slot {
  /** Which bucket (time / bucketMs) the slot holds now. */
  idx: number;
  succeeded: number;
  failed: number;
  canceled: number;
  /** Exact durations while there are few (percentiles exact), then the histogram. */
  exact: number[] | undefined;
  /** Counts by bin: an array indexed by bin (a few hundred at most), cheaper than a Map per run. */
  bins: number[] | undefined;
  timed: number;
  min: number;
  max: number;
  /** The backlog before the first change in this bucket, and after the last one (undefined: no change). */
  depthBefore: number | undefined;
  depthEnd: number | undefined;
}

function binned(values: readonly number[]): number[] {
  const bins: number[] = [];
  for (const v of values) {
    const bin = binOf(v);
    bins[bin] = (bins[bin] ?? 0) + 1;
  }
  return bins;
}

interface Key {
  rings: Array<Array<Slot | undefined>>;
  depth: number;
}

function newSlot(idx: number): Slot {
  return {
    idx,
    succeeded: 0,
    failed: 0,
    canceled: 0,
    exact: undefined,
    bins: undefined,
    timed: 0,
    min: Infinity,
    max: -Infinity,
    depthBefore: undefined,
    depthEnd: undefined,
  };
}

/**
 * Runs read back per turn of the event loop after a start. A history page costs about the same
 * whatever its size (the local store parses a whole segment of 2,000 runs to serve it), so pages
 * are large: fewer of them, less work in all.
 */
const BACKFILL_PAGE = 500;

/** Durations kept exactly per bucket before it switches to the histogram. */
const EXACT = 64;

function percentileOf(slot: Slot, p: number): number | null {
  if (slot.timed === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * slot.timed));
  if (slot.exact) return [...slot.exact].sort((a, b) => a - b)[rank - 1]!;
  if (!slot.bins) return null;
  let seen = 0;
  for (let bin = 0; bin < slot.bins.length; bin++) {
    const count = slot.bins[bin];
    if (count === undefined) continue;
    seen += count;
    // The bin's middle, kept within what was seen: a lone run reports its exact duration.
    if (seen >= rank) return Math.round(Math.min(slot.max, Math.max(slot.min, binMiddle(bin))));
  }
  return slot.max;
}

export interface SeriesIndexOptions {
  bus: Bus;
  clock: Clock;
  logger: Logger;
  /** Runs waiting (queued or delayed) of a job now. */
  waiting(job: string): number;
}

export class SeriesIndex {
  readonly #o: SeriesIndexOptions;
  readonly #keys = new Map<string, Key>();
  readonly #unsubscribe: Array<() => void> = [];
  /** From here on every finish is counted as it happens (no run finishes before a host starts). */
  #since: number;
  #closed = false;

  constructor(options: SeriesIndexOptions) {
    this.#o = options;
    this.#since = options.clock.now();
    const bus = options.bus;
    this.#unsubscribe.push(
      bus.on('run.queued', (e) => this.#changed(e.data.job)),
      bus.on('run.started', (e) => this.#changed(e.data.job)),
      bus.on('run.retrying', (e) => this.#changed(e.data.job)),
      bus.on('run.succeeded', (e) => this.#finished(e.data.job, 'succeeded', e.data.durationMs)),
      bus.on('run.failed', (e) => this.#finished(e.data.job, 'failed', e.data.durationMs)),
      bus.on('run.canceled', (e) => this.#finished(e.data.job, 'canceled', null)),
    );
  }

  /**
   * Every finish from `since` on reaches this index as an event (a cluster host hears the others'
   * from when it began to follow them, after the index was made): history is read back up to it.
   * Only later than the index's own start (no event before it was counted).
   */
  watchedFrom(since: number): void {
    if (since > this.#since) this.#since = since;
  }

  /** Reads the backlog of these jobs as it is now (runs loaded at start wait without an event). */
  watch(jobs: Iterable<string>): void {
    for (const job of jobs) this.#changed(job);
  }

  close(): void {
    this.#closed = true;
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  #key(name: string): Key {
    let key = this.#keys.get(name);
    if (!key) this.#keys.set(name, (key = { rings: RESOLUTIONS.map((r) => new Array<Slot | undefined>(r.size)), depth: 0 }));
    return key;
  }

  /** The slot of bucket `idx` in ring `r`, emptied if it held an older bucket; undefined if it is older than the ring. */
  #slot(key: Key, r: number, idx: number): Slot | undefined {
    const ring = key.rings[r]!;
    const at = idx % ring.length;
    const slot = ring[at];
    if (slot && slot.idx === idx) return slot;
    if (slot && slot.idx > idx) return undefined;
    return (ring[at] = newSlot(idx));
  }

  #setDepth(key: Key, depth: number, now: number): void {
    if (depth === key.depth) return;
    for (let r = 0; r < R; r++) {
      const slot = this.#slot(key, r, Math.floor(now / RESOLUTIONS[r]!.bucketMs))!;
      slot.depthBefore ??= key.depth;
      slot.depthEnd = depth;
    }
    key.depth = depth;
  }

  /** A run of `job` was queued, started, retried or finished: its backlog (and the host's) may have moved. */
  #changed(job: string): Key {
    const key = this.#key(job);
    const depth = this.#o.waiting(job);
    if (depth === key.depth) return key; // the common case when runs flow: nothing waits longer
    const now = this.#o.clock.now();
    const all = this.#key(ALL);
    this.#setDepth(all, all.depth + depth - key.depth, now);
    this.#setDepth(key, depth, now);
    return key;
  }

  #finished(job: string, status: 'succeeded' | 'failed' | 'canceled', durationMs: number | null): void {
    const key = this.#changed(job);
    const now = this.#o.clock.now();
    this.#add(key, status, durationMs, now);
    this.#add(this.#key(ALL), status, durationMs, now);
  }

  #count(job: string, status: 'succeeded' | 'failed' | 'canceled', durationMs: number | null, at: number): void {
    this.#add(this.#key(job), status, durationMs, at);
    this.#add(this.#key(ALL), status, durationMs, at);
  }

  /** One finished run into the buckets of `key` that hold `at`, at every resolution. */
  #add(key: Key, status: 'succeeded' | 'failed' | 'canceled', durationMs: number | null, at: number): void {
    const timed = status !== 'canceled' && durationMs !== null && Number.isFinite(durationMs);
    for (let r = 0; r < R; r++) {
      const slot = this.#slot(key, r, Math.floor(at / RESOLUTIONS[r]!.bucketMs));
      if (!slot) continue;
      slot[status]++;
      if (!timed) continue;
      const ms = durationMs!;
      slot.timed++;
      if (slot.timed <= EXACT) (slot.exact ??= []).push(ms);
      else {
        const bins = (slot.bins ??= binned(slot.exact ?? []));
        slot.exact = undefined;
        const bin = binOf(ms);
        bins[bin] = (bins[bin] ?? 0) + 1;
      }
      if (ms < slot.min) slot.min = ms;
      if (ms > slot.max) slot.max = ms;
    }
  }

  /** Whether the index holds anything of `job` (it counts jobs that are gone but ran). */
  knows(job: string): boolean {
    return this.#keys.has(job);
  }

  /** The buckets of a window for the host (no `job`) or one job, oldest first. */
  series(window: SeriesWindow, job?: string): Series {
    if (!Object.hasOwn(SERIES_WINDOWS, window)) throw new HostError('INVALID_BODY', `window: expected one of ${Object.keys(SERIES_WINDOWS).join(', ')}`);
    const { bucketMs, buckets } = SERIES_WINDOWS[window];
    const r = RESOLUTIONS.findIndex((res) => res.bucketMs === bucketMs);
    const now = this.#o.clock.now();
    const last = Math.floor(now / bucketMs);
    const first = last - buckets + 1;
    const key = this.#keys.get(job ?? ALL);
    const ring = key?.rings[r];
    const out: SeriesBucket[] = new Array<SeriesBucket>(buckets);
    // Backlog at each bucket's end, newest first: the one now, then before each change.
    let depth: number | null = key?.depth ?? 0;
    const watchedFrom = Math.floor(this.#since / bucketMs);
    for (let idx = last; idx >= first; idx--) {
      const slot = ring?.[idx % ring.length];
      const held = slot && slot.idx === idx ? slot : undefined;
      out[idx - first] = {
        start: isoTime(idx * bucketMs),
        succeeded: held?.succeeded ?? 0,
        failed: held?.failed ?? 0,
        canceled: held?.canceled ?? 0,
        p50Ms: held ? percentileOf(held, 50) : null,
        p95Ms: held ? percentileOf(held, 95) : null,
        queued: idx < watchedFrom ? null : depth,
      };
      if (held?.depthBefore !== undefined) depth = held.depthBefore;
    }
    return {
      window,
      job: job ?? null,
      bucketMs,
      from: isoTime(first * bucketMs),
      to: isoTime((last + 1) * bucketMs),
      watchingSince: isoTime(this.#since),
      buckets: out,
    };
  }

  /**
   * Counts the runs that finished before the index was watching, from history, newest first, a
   * page per turn of the event loop; stops at runs created a day before the longest window.
   */
  async backfill(list: (query: RunQuery) => Promise<Page<Run>>): Promise<number> {
    const until = this.#since;
    const { bucketMs, buckets } = SERIES_WINDOWS['7d'];
    const oldest = until - bucketMs * buckets;
    const stopAt = isoTime(oldest - 86_400_000);
    let before: string | undefined;
    let counted = 0;
    for (;;) {
      if (this.#closed) return counted;
      const page = await list({ limit: BACKFILL_PAGE, ...(before !== undefined && { before }) });
      for (const run of page.items) {
        if (!isFinal(run.status) || run.endedAt === null) continue;
        const at = Date.parse(run.endedAt);
        if (at >= until || at < oldest) continue;
        this.#count(run.job, run.status as 'succeeded' | 'failed' | 'canceled', run.durationMs, at);
        counted++;
      }
      const lastRun = page.items.at(-1);
      if (!page.next || !lastRun || lastRun.createdAt < stopAt) return counted;
      before = page.next;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
