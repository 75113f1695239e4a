import { HostError } from '../contract/errors.js';
import type { AnyHostEvent } from '../contract/events.js';

/**
 * `host.events()`: the bus's events as an async iterator. Events wait in a buffer until the
 * consumer asks for them; a consumer that falls behind by more than the bound (count or bytes)
 * is not followed further: its subscription ends, what was buffered is still given, and then
 * the iterator throws EVENTS_OVERFLOW with `details.seq`, the last event it gave, to resume
 * from (`events({ since: seq })` replays what the replay buffer still has).
 */

export interface IteratorBounds {
  /** Events buffered for a slow consumer at most (default 10,000). */
  maxBuffered?: number | undefined;
  /** Their estimated JSON bytes at most (default 16 MiB). */
  maxBufferedBytes?: number | undefined;
}

export function eventIterator(
  subscribe: (listener: (event: AnyHostEvent) => void) => { close(): void },
  sizeOf: (event: AnyHostEvent) => number,
  /** The seq the consumer has seen up to (its `since`, or the bus's seq when it subscribed). */
  startSeq: number,
  bounds: IteratorBounds = {},
): AsyncIterableIterator<AnyHostEvent> {
  const maxEvents = bounds.maxBuffered ?? 10_000;
  const maxBytes = bounds.maxBufferedBytes ?? 16 * 1024 * 1024;
  const buffer: AnyHostEvent[] = [];
  const sizes: number[] = [];
  let head = 0;
  let bytes = 0;
  let wake: (() => void) | undefined;
  let closed = false;
  let overflowed = false;
  let lastSeq = startSeq;
  let sub: { close(): void } | undefined;
  const close = (): void => {
    sub?.close();
    sub = undefined;
  };
  sub = subscribe((event) => {
    if (overflowed || closed) return;
    const size = sizeOf(event);
    if (buffer.length - head >= maxEvents || bytes + size > maxBytes) {
      // Dropped from here on: following a consumer this far behind would buffer without end.
      overflowed = true;
      close();
    } else {
      buffer.push(event);
      sizes.push(size);
      bytes += size;
    }
    wake?.();
  });
  // A replay in `subscribe` may already have overflowed before `sub` was set.
  if (overflowed) close();
  const iterator: AsyncIterableIterator<AnyHostEvent> = {
    next: async () => {
      while (head === buffer.length && !closed && !overflowed) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      if (head < buffer.length) {
        const value = buffer[head]!;
        bytes -= sizes[head]!;
        head++;
        // Compact now and then rather than shift each time (O(n) per event on a long buffer).
        if (head > 1024 && head * 2 > buffer.length) {
          buffer.splice(0, head);
          sizes.splice(0, head);
          head = 0;
        }
        lastSeq = value.seq;
        return { value, done: false };
      }
      if (overflowed && !closed) {
        closed = true;
        throw new HostError(
          'EVENTS_OVERFLOW',
          `the consumer fell more than ${maxEvents} events or ${maxBytes} bytes behind: events after seq ${lastSeq} were dropped; resume with events({ since: ${lastSeq} })`,
          { seq: lastSeq },
        );
      }
      return { value: undefined, done: true };
    },
    return: async () => {
      closed = true;
      close();
      wake?.();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
