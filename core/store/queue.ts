/**
 * The data structures behind dispatch: a deque, a priority FIFO (lower priority number first,
 * first-in-first-out within a priority), weighted queues picked by smooth weighted round-robin,
 * and a min-heap of delayed items. All O(1) or O(log n) per operation, so a deep backlog does
 * not slow dispatch down.
 */

export class Deque<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }
}

export class PriorityFifo<T> {
  readonly #buckets = new Map<number, Deque<T>>();
  #order: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  #bucket(priority: number): Deque<T> {
    let bucket = this.#buckets.get(priority);
    if (!bucket) {
      bucket = new Deque<T>();
      this.#buckets.set(priority, bucket);
      this.#order.push(priority);
      this.#order.sort((a, b) => a - b);
    }
    return bucket;
  }

  push(item: T, priority: number): void {
    this.#bucket(priority).push(item);
    this.#size++;
  }

  /** Puts an item back at the front of its priority (it keeps its turn). */
  unshift(item: T, priority: number): void {
    this.#bucket(priority).unshift(item);
    this.#size++;
  }

  shift(): T | undefined {
    for (const p of this.#order) {
      const bucket = this.#buckets.get(p)!;
      const item = bucket.shift();
      if (item !== undefined) {
        this.#size--;
        if (bucket.length === 0 && this.#order.length > 1) {
          this.#buckets.delete(p);
          this.#order = this.#order.filter((x) => x !== p);
        }
        return item;
      }
    }
    return undefined;
  }
}

interface WeightedQueue<T> {
  weight: number;
  current: number;
  items: PriorityFifo<T>;
}

/**
 * Named queues with weights. When several hold items, `shift()` follows smooth weighted
 * round-robin (nginx's): over any window, each queue gets its weight's share, evenly interleaved.
 */
export class WeightedQueues<T> {
  readonly #queues = new Map<string, WeightedQueue<T>>();

  constructor(weights: Record<string, number>) {
    this.setWeights(weights);
  }

  setWeights(weights: Record<string, number>): void {
    for (const [name, weight] of Object.entries(weights)) {
      const q = this.#queues.get(name);
      if (q) q.weight = weight;
      else this.#queues.set(name, { weight, current: 0, items: new PriorityFifo<T>() });
    }
    // A queue dropped from the config keeps its items (weight 1) until they drain.
    for (const [name, q] of this.#queues) if (!(name in weights)) q.weight = 1;
  }

  has(name: string): boolean {
    return this.#queues.has(name);
  }

  push(queue: string, item: T, priority: number, front = false): void {
    const q = this.#queues.get(queue) ?? this.#queues.get('default')!;
    if (front) q.items.unshift(item, priority);
    else q.items.push(item, priority);
  }

  shift(): T | undefined {
    let total = 0;
    let best: WeightedQueue<T> | undefined;
    for (const q of this.#queues.values()) {
      if (q.items.size === 0) continue;
      q.current += q.weight;
      total += q.weight;
      if (!best || q.current > best.current) best = q;
    }
    if (!best) return undefined;
    best.current -= total;
    return best.items.shift();
  }

  sizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, q] of this.#queues) out[name] = q.items.size;
    return out;
  }
}

/** A binary min-heap keyed by a number (the time an item is due). */
export class TimeHeap<T> {
  readonly #heap: { at: number; item: T }[] = [];

  get size(): number {
    return this.#heap.length;
  }

  peekTime(): number | undefined {
    return this.#heap[0]?.at;
  }

  push(at: number, item: T): void {
    const h = this.#heap;
    h.push({ at, item });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= at) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const h = this.#heap;
    const top = h[0];
    if (!top) return undefined;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top.item;
  }
}
