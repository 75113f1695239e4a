import type { Redis } from 'ioredis';
import type { Logger } from '../contract/logger.js';
import { release } from './keep-connected.js';
import { type GapWatch, streamInfo } from './stream-gaps.js';

/**
 * The host's one blocking read: XREAD over the BullMQ events stream of every job it has loaded
 * (a run added, delayed, finished: the dispatcher's wake-ups) and the cluster stream (cancel
 * requests for runs on this host). One connection whatever the number of jobs. Streams are kept
 * in Redis, so after a reconnect the read goes on from the last entry it saw and misses nothing
 * still in the stream; what is no longer in the cluster stream is found by a `GapWatch`.
 */

export interface StreamEntry {
  stream: string;
  id: string;
  fields: Record<string, string>;
}

type XReadReply = Array<[string, Array<[string, string[]]>]> | null;

/** How long one XREAD blocks; a change of the followed streams interrupts it (CLIENT UNBLOCK). */
export const BLOCK_MS = 5000;
/**
 * While every slot of the host is busy, the next read waits this long (or until a slot frees):
 * the host needs no wake-ups then, and a read per event would cost Redis a reply to every host for
 * every event. Entries wait in the stream and come in one batch. Short, because the other hosts'
 * events come through this read too: it adds to their delay on their way to this host's clients.
 */
const BUSY_PAUSE_MS = 20;
/** Entries one read returns at most. */
const COUNT = 1000;
/** A read that starts this much later than a blocking read could have lasted: the loop stalled, entries may have gone unread. */
const STALL_MS = BLOCK_MS + 2000;

export class StreamReader {
  readonly #reader: Redis;
  readonly #control: Redis;
  readonly #logger: Logger;
  readonly #onEntries: (entries: StreamEntry[]) => void;
  readonly #gaps: GapWatch | undefined;
  /** Bumped each time the reading connection closes: a read sent before is answered after the reconnect, maybe past a gap. */
  #epoch = 0;
  #lastReadAt = 0;
  /** Followed streams and the id of the last entry seen in each. */
  readonly #ids = new Map<string, string>();
  #clientId: number | null = null;
  #reading = false;
  #closing = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #busy = false;
  #resume: (() => void) | undefined;
  /** Resolves at close: a read that ioredis never settles (disconnected while reconnecting) does not hold the loop. */
  #closed!: () => void;
  readonly #closedSignal = new Promise<null>((resolve) => (this.#closed = () => resolve(null)));

  constructor(reader: Redis, control: Redis, logger: Logger, onEntries: (entries: StreamEntry[]) => void, gaps?: GapWatch) {
    this.#reader = reader;
    this.#control = control;
    this.#logger = logger;
    this.#onEntries = onEntries;
    this.#gaps = gaps;
    reader.on('close', () => {
      this.#epoch++;
      gaps?.suspect();
    });
    const learnId = (): void => {
      this.#reader.client('ID').then(
        (id) => (this.#clientId = Number(id)),
        () => undefined,
      );
    };
    reader.on('ready', learnId);
    if (reader.status === 'ready') learnId();
  }

  /** Starts following `stream` from its current end (a literal `$` would lose entries between two reads). */
  async follow(stream: string): Promise<void> {
    if (this.#ids.has(stream)) return;
    if (stream === this.#gaps?.stream) {
      // Where the stream ends and how many entries it ever had, in one answer: the watch counts from there.
      const info = await streamInfo(this.#control, stream);
      if (this.#ids.has(stream)) return;
      this.#ids.set(stream, this.#gaps.started(info));
      return this.#interrupt();
    }
    const last = (await this.#control.xrevrange(stream, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
    if (this.#ids.has(stream)) return;
    this.#ids.set(stream, last[0]?.[0] ?? '0-0');
    this.#interrupt();
  }

  /** Before a read that may come after a gap: compares the watched stream with what was read. */
  async #checkGap(): Promise<void> {
    const gaps = this.#gaps;
    const last = gaps ? this.#ids.get(gaps.stream) : undefined;
    if (!gaps?.due || last === undefined) return;
    const info = await Promise.race([streamInfo(this.#reader, gaps.stream), this.#closedSignal]);
    if (!this.#closing) gaps.check(info, last);
  }

  unfollow(stream: string): void {
    if (this.#ids.delete(stream)) this.#interrupt();
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** The host has no free slot (true) or has one again (false): see BUSY_PAUSE_MS. */
  setBusy(busy: boolean): void {
    this.#busy = busy;
    if (!busy) this.#resume?.();
  }

  #pauseWhileBusy(): Promise<void> {
    if (!this.#busy) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), BUSY_PAUSE_MS);
      const done = (): void => {
        clearTimeout(timer);
        this.#resume = undefined;
        resolve();
      };
      this.#resume = done;
    });
  }

  /** The current read ends at once and the next one reads the new set of streams. */
  #interrupt(): void {
    this.#wake?.();
    if (this.#reading && this.#clientId !== null) this.#control.client('UNBLOCK', this.#clientId).catch(() => undefined);
  }

  async #run(): Promise<void> {
    while (!this.#closing) {
      const keys = [...this.#ids.keys()];
      if (keys.length === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      await this.#pauseWhileBusy();
      if (this.#closing) return;
      const now = Date.now();
      if (this.#lastReadAt > 0 && now - this.#lastReadAt > STALL_MS) this.#gaps?.suspect();
      this.#lastReadAt = now;
      const epoch = this.#epoch;
      let reply: XReadReply;
      try {
        await this.#checkGap();
        this.#reading = true;
        const read = this.#reader.xread('COUNT', COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...keys.map((k) => this.#ids.get(k)!)) as Promise<XReadReply>;
        reply = await Promise.race([read, this.#closedSignal]);
      } catch (err) {
        this.#reading = false;
        if (this.#closing) return;
        this.#gaps?.suspect();
        this.#logger.debug({ err }, 'stream read failed; retrying');
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      this.#reading = false;
      if (this.#closing) return;
      // Sent before the connection was lost and answered after: it may have read past a gap
      // unchecked. Dropped (nothing moved on): the next read, after the check, reads it again.
      if (epoch !== this.#epoch) continue;
      if (!reply) continue;
      const entries: StreamEntry[] = [];
      for (const [stream, list] of reply) {
        if (!this.#ids.has(stream) || list.length === 0) continue;
        this.#ids.set(stream, list[list.length - 1]![0]);
        if (stream === this.#gaps?.stream) this.#gaps.read(list.length, list.length >= COUNT);
        for (const [id, flat] of list) {
          const fields: Record<string, string> = {};
          for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
          entries.push({ stream, id, fields });
        }
      }
      try {
        this.#onEntries(entries);
      } catch (err) {
        this.#logger.error({ err }, 'a stream entry handler failed');
      }
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#closed();
    this.#wake?.();
    this.#resume?.();
    release(this.#reader);
    this.#reader.disconnect();
    await this.#loop;
  }
}
