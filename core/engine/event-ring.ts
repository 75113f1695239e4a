import type { AnyHostEvent } from '../contract/events.js';

/**
 * The bus's replay buffer (`since=`): the newest events, bounded in count (`events.buffer`) and
 * in bytes (`events.bufferBytes`), so events that carry large results cannot hold memory without
 * bound. Events enter with consecutive seqs; the oldest leave first.
 */

/** Deeper than this, a value is not walked (event data is shallow; this only bounds a pathological one). */
const MAX_DEPTH = 64;

/**
 * About the size of `value` as JSON text, in characters, without making the text: strings by
 * their length, numbers as 8. A walk, not a serialization: cheap for the small data of most
 * events, and proportional to a large result's size for the few that carry one.
 */
export function approxJsonSize(value: unknown, depth = 0): number {
  switch (typeof value) {
    case 'string':
      return value.length + 2;
    case 'number':
      return 8;
    case 'boolean':
      return 5;
    case 'object': {
      if (value === null) return 4;
      if (depth >= MAX_DEPTH) return 2;
      let n = 2;
      if (Array.isArray(value)) {
        for (const item of value) n += approxJsonSize(item, depth + 1) + 1;
        return n;
      }
      for (const key in value) {
        if (Object.hasOwn(value, key)) n += key.length + 4 + approxJsonSize((value as Record<string, unknown>)[key], depth + 1);
      }
      return n;
    }
    default:
      return 0;
  }
}

/** An event's envelope (`seq`, `type`, `at`) and its data, as JSON, about. */
export const eventSize = (event: AnyHostEvent): number => 60 + event.type.length + approxJsonSize(event.data);

export class EventRing {
  readonly #events: (AnyHostEvent | undefined)[];
  readonly #sizes: Float64Array;
  readonly #maxBytes: number;
  #bytes = 0;
  /** The oldest seq kept, and the newest: empty while first > last. */
  #first = 1;
  #last = 0;

  constructor(capacity: number, maxBytes: number) {
    const n = Math.max(1, capacity);
    this.#events = new Array<AnyHostEvent | undefined>(n);
    this.#sizes = new Float64Array(n);
    this.#maxBytes = maxBytes;
  }

  /** Keeps `event` (its seq is the newest's plus one), letting the oldest go past either bound. */
  push(event: AnyHostEvent): void {
    const n = this.#events.length;
    if (this.#first > this.#last) this.#first = event.seq;
    this.#last = event.seq;
    if (this.#last - this.#first + 1 > n) this.#evict();
    const slot = event.seq % n;
    const size = eventSize(event);
    this.#events[slot] = event;
    this.#sizes[slot] = size;
    this.#bytes += size;
    while (this.#bytes > this.#maxBytes && this.#first <= this.#last) this.#evict();
  }

  #evict(): void {
    const slot = this.#first % this.#events.length;
    this.#bytes -= this.#sizes[slot]!;
    this.#events[slot] = undefined;
    this.#sizes[slot] = 0;
    this.#first++;
  }

  /** The oldest seq kept (the newest's plus one when none is). */
  get first(): number {
    return this.#first;
  }

  /** The kept event with `seq`, if any. */
  get(seq: number): AnyHostEvent | undefined {
    if (seq < this.#first || seq > this.#last) return undefined;
    const event = this.#events[seq % this.#events.length];
    return event?.seq === seq ? event : undefined;
  }

  /** The size counted for a kept event; measured anew for one not kept (a `run.log`). */
  sizeOf(event: AnyHostEvent): number {
    return this.get(event.seq) === event ? this.#sizes[event.seq % this.#events.length]! : eventSize(event);
  }

  /** Kept events and their estimated bytes (for tests and metrics). */
  get stats(): { events: number; bytes: number } {
    return { events: Math.max(0, this.#last - this.#first + 1), bytes: this.#bytes };
  }
}
