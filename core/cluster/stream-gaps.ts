import type { Redis } from 'ioredis';
import { isoTime } from '../contract/clock.js';
import type { EventGap } from '../contract/store-health.js';

/**
 * Gaps in a host's reading of the cluster stream (SPEC §11). The stream is capped (`MAXLEN ~
 * backend.streamLength`): a host cut off from Redis, or stalled, while the other hosts write more
 * than that, would go on from the oldest entry left and never know what it missed. This keeps
 * count of where the reading stands in the stream's whole history (Redis counts every entry ever
 * added: XINFO STREAM's `entries-added`) and, whenever a read may have skipped something (the
 * connection was lost, a read failed, a read came back full, the reading loop stalled), compares
 * it with the oldest entry still there before the next read. Entries between the last one read and
 * that oldest one are lost: the host says so (a warning, a counter, `/ready`, and `events.gap` to
 * its WebSocket clients, which reload what they show).
 */

/** What XINFO STREAM says that the check needs. */
export interface StreamInfo {
  /** Entries ever added (null before Redis 7.0). */
  added: number | null;
  length: number;
  /** The oldest entry's id (null when the stream is empty). */
  first: string | null;
  lastGenerated: string;
}

/** Compares two stream ids (`<ms>-<seq>`) as Redis orders them. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

/** XINFO STREAM of `stream` (null when it does not exist yet). */
export async function streamInfo(redis: Redis, stream: string): Promise<StreamInfo | null> {
  let flat: unknown[];
  try {
    flat = (await redis.xinfo('STREAM', stream)) as unknown[];
  } catch (err) {
    if (err instanceof Error && /no such key/i.test(err.message)) return null;
    throw err;
  }
  const info = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) info.set(String(flat[i]), flat[i + 1]);
  const first = info.get('first-entry');
  const added = info.get('entries-added');
  return {
    added: added === undefined ? null : Number(added),
    length: Number(info.get('length') ?? 0),
    first: Array.isArray(first) ? String(first[0]) : null,
    lastGenerated: String(info.get('last-generated-id') ?? '0-0'),
  };
}

export class GapWatch {
  /** The stream watched. */
  readonly stream: string;
  readonly #onGap: (gap: EventGap) => void;
  /** The number (in the stream's whole history, from 1) of the last entry read; null until known. */
  #position: number | null = null;
  #due = false;
  #gaps = 0;
  #lost = 0;
  #last: EventGap | null = null;

  constructor(stream: string, onGap: (gap: EventGap) => void) {
    this.stream = stream;
    this.#onGap = onGap;
  }

  /** Reading starts at the stream's end as `info` gives it: returns the id to read after. */
  started(info: StreamInfo | null): string {
    this.#position = info ? info.added : 0;
    return info?.lastGenerated ?? '0-0';
  }

  /** `n` entries were read in one go; `full`: as many as one read returns (more may wait). */
  read(n: number, full: boolean): void {
    if (this.#position !== null) this.#position += n;
    if (full) this.#due = true;
  }

  /** What comes next may have skipped entries (the connection was lost, a read failed, the loop stalled): check first. */
  suspect(): void {
    this.#due = true;
  }

  get due(): boolean {
    return this.#due;
  }

  /** Compares the stream (`info`, just read) with `last`, the id of the last entry read; reports a gap. */
  check(info: StreamInfo | null, last: string): void {
    this.#due = false;
    // Empty, or the entry after `last` is still there: nothing was trimmed unread.
    if (!info || info.first === null || compareIds(info.first, last) <= 0) return;
    const before = info.added === null ? null : info.added - info.length;
    if (before !== null && this.#position !== null) {
      const lost = before - this.#position;
      if (lost <= 0) return;
      this.#position = before;
      return this.#report(lost, last, info.first);
    }
    // Without Redis's count (before 7.0) the oldest id alone says entries went unread, not how many.
    this.#report(null, last, info.first);
  }

  #report(lost: number | null, from: string, to: string): void {
    const gap: EventGap = { at: isoTime(Date.now()), lost, from, to };
    this.#gaps++;
    this.#lost += lost ?? 0;
    this.#last = gap;
    this.#onGap(gap);
  }

  /** Gaps found since the host started, the entries lost in them, and the last one. */
  get tally(): { eventGaps: number; eventsLost: number; lastGap: EventGap | null } {
    return { eventGaps: this.#gaps, eventsLost: this.#lost, lastGap: this.#last };
  }
}
