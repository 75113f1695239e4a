import type { Clock, Timer } from './clock.js';

/** An item of an IndexedHeap: its key (a due time), and where it sits (-1 when not in the heap). */
export interface HeapItem {
  heapKey: number;
  heapIndex: number;
}

/**
 * A binary min-heap that knows where each item is, so an item can be removed in O(log n) the
 * moment it no longer matters (an attempt that ended before its deadline).
 */
export class IndexedHeap<T extends HeapItem> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    item.heapIndex = this.#items.length;
    this.#items.push(item);
    this.#up(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.#items[0];
    if (top) this.remove(top);
    return top;
  }

  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0 || this.#items[i] !== item) return;
    const last = this.#items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    this.#items[i] = last;
    last.heapIndex = i;
    this.#down(i);
    this.#up(last.heapIndex);
  }

  #swap(a: number, b: number): void {
    const x = this.#items[a]!;
    const y = this.#items[b]!;
    this.#items[a] = y;
    this.#items[b] = x;
    y.heapIndex = a;
    x.heapIndex = b;
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#items[parent]!.heapKey <= this.#items[i]!.heapKey) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const n = this.#items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.#items[l]!.heapKey < this.#items[m]!.heapKey) m = l;
      if (r < n && this.#items[r]!.heapKey < this.#items[m]!.heapKey) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

/**
 * Deadlines of running attempts, both backends' per-attempt timeouts: one timer armed for the
 * earliest, not a timer per attempt, on the backend's clock. An item leaves when it is handed to
 * `due` or `delete`d (an attempt that ended first); a delete leaves the timer armed (re-arming it
 * per attempt would cost what a timer per attempt costs): it fires, finds nothing due, and re-arms
 * for the next deadline or stops.
 */
export class Deadlines<T extends HeapItem> {
  readonly #clock: Clock;
  readonly #due: (item: T) => void;
  readonly #heap = new IndexedHeap<T>();
  #timer: Timer | undefined;
  #timerAt = Infinity;

  constructor(clock: Clock, due: (item: T) => void) {
    this.#clock = clock;
    this.#due = due;
  }

  /** Hands `item` to `due` at `at` (ms) unless it is deleted first; an item has one deadline at a time. */
  set(item: T, at: number): void {
    this.#heap.remove(item);
    item.heapKey = at;
    this.#heap.push(item);
    if (at < this.#timerAt) this.#arm();
  }

  delete(item: T): void {
    this.#heap.remove(item);
  }

  /** Stops the timer (the backend stops); deadlines set later arm it again. */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(): void {
    this.#timer?.cancel();
    const first = this.#heap.peek();
    if (!first) return this.close();
    this.#timerAt = first.heapKey;
    this.#timer = this.#clock.setTimer(Math.max(0, first.heapKey - this.#clock.now()), () => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      const now = this.#clock.now();
      for (let item = this.#heap.peek(); item && item.heapKey <= now; item = this.#heap.peek()) {
        this.#heap.remove(item);
        this.#due(item);
      }
      if (this.#heap.size > 0 && this.#timer === undefined) this.#arm();
    });
  }
}
