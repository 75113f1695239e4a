import type { Clock, Timer } from './clock.js';

/**
 * Items ordered by a due time (ms), earliest first: a binary heap, so adding and taking stay
 * O(log n) with any number waiting (a dead receiver can leave 100,000 deliveries waiting).
 * Ties keep the order they were added in.
 */
export class DueHeap<T> {
  #at: number[] = [];
  #seq: number[] = [];
  #items: T[] = [];
  #next = 0;

  get size(): number {
    return this.#items.length;
  }

  /** The earliest due time, or Infinity when empty. */
  peek(): number {
    return this.#items.length > 0 ? this.#at[0]! : Infinity;
  }

  push(at: number, item: T): void {
    this.#at.push(at);
    this.#seq.push(this.#next++);
    this.#items.push(item);
    let i = this.#items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  /** Takes the earliest item if it is due at `now`. */
  popDue(now: number): T | undefined {
    if (this.#items.length === 0 || this.#at[0]! > now) return undefined;
    const top = this.#items[0]!;
    const last = this.#items.length - 1;
    this.#swap(0, last);
    this.#at.pop();
    this.#seq.pop();
    this.#items.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.#items.length && this.#before(l, m)) m = l;
      if (r < this.#items.length && this.#before(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
    return top;
  }

  clear(): void {
    this.#at = [];
    this.#seq = [];
    this.#items = [];
  }

  #before(a: number, b: number): boolean {
    return this.#at[a]! < this.#at[b]! || (this.#at[a] === this.#at[b] && this.#seq[a]! < this.#seq[b]!);
  }

  #swap(a: number, b: number): void {
    [this.#at[a], this.#at[b]] = [this.#at[b]!, this.#at[a]!];
    [this.#seq[a], this.#seq[b]] = [this.#seq[b]!, this.#seq[a]!];
    [this.#items[a], this.#items[b]] = [this.#items[b]!, this.#items[a]!];
  }
}

/**
 * Items due at given times, each handed to `due` once its time has come, under one timer armed
 * for the earliest (not a timer per item), on the host's clock. What the engine's timed rules
 * (`slow`, `missed`) share.
 */
export class DueTimer<T> {
  readonly #clock: Clock;
  readonly #due: (item: T) => void;
  readonly #heap = new DueHeap<T>();
  #timer: Timer | undefined;
  #at = Infinity;
  #closed = false;

  constructor(clock: Clock, due: (item: T) => void) {
    this.#clock = clock;
    this.#due = due;
  }

  /** Hands `item` to `due` at `at` (ms), or at the next turn of the timer if that is past. */
  push(at: number, item: T): void {
    if (this.#closed) return;
    this.#heap.push(at, item);
    this.#arm();
  }

  /** Drops every item and the timer. */
  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#heap.clear();
  }

  #arm(): void {
    const at = this.#heap.peek();
    if (this.#closed || at === Infinity || at >= this.#at) return;
    this.#timer?.cancel();
    this.#at = at;
    this.#timer = this.#clock.setTimer(Math.max(0, at - this.#clock.now()), () => {
      this.#timer = undefined;
      this.#at = Infinity;
      const now = this.#clock.now();
      for (let item = this.#heap.popDue(now); item !== undefined && !this.#closed; item = this.#heap.popDue(now)) this.#due(item);
      this.#arm();
    });
  }
}
