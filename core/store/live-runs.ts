import type { Run } from '../contract/run.js';

/**
 * The store's unfinished runs by id, with an index of their ids in order, so a page of history
 * (`GET /runs`, newest first) walks back from its cursor over as many runs as it shows instead of
 * collecting and sorting every waiting run: 100,000 queued runs cost a page no more than 50.
 * Ids sort by creation time, so a new run's id goes at the end; one out of order (recovered at
 * load) is put in its place. A removed id stays in the index until an eighth of it has gone,
 * then the index is compacted in one pass (amortized O(1) per removal); the newest end is kept
 * clean at once.
 */
export class LiveRuns extends Map<string, Run> {
  /** Every live id ascending, and ids removed since the last compaction. */
  #ids: string[] = [];
  #dead = 0;

  override set(id: string, run: Run): this {
    if (!super.has(id)) this.#insert(id);
    return super.set(id, run);
  }

  override delete(id: string): boolean {
    if (!super.delete(id)) return false;
    const ids = this.#ids;
    // The newest end first: a page starts there, so removed ids never pile up where it walks from.
    if (ids[ids.length - 1] === id) {
      ids.pop();
      while (ids.length > 0 && this.#dead > 0 && !super.has(ids[ids.length - 1]!)) {
        ids.pop();
        this.#dead--;
      }
      return true;
    }
    // At most an eighth of the index is removed ids: a page skips a few thousand at worst, and
    // compacting (one pass, a few ms for 100,000) costs O(1) per removal on average.
    if (++this.#dead > 1024 && this.#dead * 8 > ids.length) this.#compact();
    return true;
  }

  override clear(): void {
    super.clear();
    this.#ids = [];
    this.#dead = 0;
  }

  /** Live runs with an id before `before` (all without it), newest first. */
  *newest(before?: string): Generator<Run> {
    const ids = this.#ids;
    for (let i = (before === undefined ? ids.length : this.#lowerBound(before)) - 1; i >= 0; i--) {
      const run = super.get(ids[i]!);
      if (run) yield run;
    }
  }

  #insert(id: string): void {
    const ids = this.#ids;
    if (ids.length === 0 || id > ids[ids.length - 1]!) {
      ids.push(id);
      return;
    }
    const at = this.#lowerBound(id);
    // Removed earlier and back (its id is still in the index): alive again, not twice.
    if (ids[at] === id) this.#dead--;
    else ids.splice(at, 0, id);
  }

  /** The first index whose id is not below `id`. */
  #lowerBound(id: string): number {
    const ids = this.#ids;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[mid]! < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #compact(): void {
    this.#ids = this.#ids.filter((id) => super.has(id));
    this.#dead = 0;
  }
}

const newestFirst = (a: Run, b: Run): number => (a.id < b.id ? 1 : -1);

/** The `k` newest runs seen (by id), in O(k) memory whatever the number offered. */
export class Newest {
  readonly #k: number;
  #items: Run[] = [];
  /** Once `k` are kept: the k-th newest id; anything older cannot make the page. */
  #floor: string | undefined;

  constructor(k: number) {
    this.#k = k;
  }

  add(run: Run): void {
    if (this.#floor !== undefined && run.id <= this.#floor) return;
    this.#items.push(run);
    if (this.#items.length >= 2 * this.#k) this.#trim();
  }

  /** The k-th newest id, once there are k; undefined before. */
  floor(): string | undefined {
    if (this.#items.length >= this.#k) this.#trim();
    return this.#floor;
  }

  #trim(): void {
    this.#items.sort(newestFirst);
    this.#items.length = Math.min(this.#items.length, this.#k);
    if (this.#items.length === this.#k) this.#floor = this.#items[this.#k - 1]!.id;
  }

  /** Newest first. */
  items(): Run[] {
    this.#trim();
    return this.#items;
  }
}
