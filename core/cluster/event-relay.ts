import type { Redis } from 'ioredis';
import type { BackendHooks } from '../contract/backend.js';
import { type AnyHostEvent, EVENT_TYPES, type EventType } from '../contract/events.js';
import type { Logger } from '../contract/logger.js';
import type { RelayBacklog } from './backlog.js';

/**
 * Events from every host to every host (SPEC §11): each host appends its own events to the
 * cluster stream (those of one turn of the event loop as one entry: one XADD and one JSON text
 * per turn, not per event, which was a third of a host's CPU per run), and reads the
 * stream with its one blocking XREAD (`StreamReader`), where the entries of other hosts come back
 * to the engine to be emitted with `data.host`. A stream, not pub/sub: a host that reconnects goes
 * on from the last entry it read, and entries of all hosts keep one order.
 */

/** The `event` field of a shared event's stream entry (cancel requests share the stream). */
export const HOST_EVENT = 'host.event';

/** Every host's own: its log lines (kept with the run), its gaps (what it alone missed). */
const local = new Set<string>(['run.log', 'events.gap']);
const relayable = new Set<string>(EVENT_TYPES.filter((t) => !local.has(t)));

/**
 * The checks of what another host wrote, by hand: every host reads every other's events, and a
 * schema library's parse (with its copy of each payload) cost a share of a host's CPU per run.
 */
const isRelayable = (t: unknown): t is string => typeof t === 'string' && relayable.has(t);
const nonEmpty = (s: unknown): s is string => typeof s === 'string' && s.length > 0;
type EventData = Record<string, unknown> & { job: string | null };
/** An event's data: an object whose `job` is a string or null (it is spread into a new object, not kept). */
function eventData(d: unknown): EventData | undefined {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return undefined;
  const job = (d as { job?: unknown }).job;
  return job === null || typeof job === 'string' ? (d as EventData) : undefined;
}

export class EventRelay {
  readonly #redis: Redis;
  readonly #stream: string;
  readonly #hostId: string;
  readonly #logger: Logger;
  readonly #maxLen: string;
  #pending: Array<[string, string, unknown]> = [];
  #closed = false;

  readonly #backlog: RelayBacklog;

  constructor(redis: Redis, stream: string, hostId: string, logger: Logger, maxLen: number, backlog: RelayBacklog) {
    this.#maxLen = String(maxLen);
    this.#redis = redis;
    this.#backlog = backlog;
    this.#stream = stream;
    this.#hostId = hostId;
    this.#logger = logger;
  }

  /**
   * Appends one of this host's events to the stream, with those of the same turn of the event loop
   * in one entry: flushed after the turn's I/O callbacks (setImmediate), not at the end of the
   * current microtask queue, so the starts and ends of every reply read in one turn share it
   * (a microtask flush made an XADD per reply, about one per five runs).
   */
  share(event: AnyHostEvent): void {
    if (this.#closed || local.has(event.type)) return;
    if (this.#pending.length === 0) setImmediate(() => this.#flush());
    this.#pending.push([event.type, event.at, event.data]);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    // The patient connection queues it while Redis is out of reach (it is sent once it is back),
    // up to the backlog's bound.
    if (!this.#backlog.take(events.length)) return;
    this.#redis
      .xadd(this.#stream, 'MAXLEN', '~', this.#maxLen, '*', 'event', HOST_EVENT, 'host', this.#hostId, 'events', JSON.stringify(events))
      .catch((err: unknown) => this.#logger.warn({ err, events: events.length }, 'could not share events with the other hosts'))
      .finally(() => this.#backlog.settle(events.length));
  }

  /** Shared events read from the stream: another host's go to the engine, in order; this host's own are skipped. */
  receive(fields: Record<string, string>, hooks: BackendHooks): void {
    const host = fields['host'];
    if (host === this.#hostId || !nonEmpty(host)) return;
    // The events of one turn of a host, in order: `events` is a JSON array of `[type, at, data]`.
    const events = fields['events'];
    if (typeof events === 'string') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(events);
      } catch {
        return;
      }
      if (!Array.isArray(parsed)) return;
      // Each on its own: one event a newer host knows and this one does not leaves the others.
      for (const item of parsed) {
        if (!Array.isArray(item) || item.length !== 3) continue;
        const [type, at, raw] = item as [unknown, unknown, unknown];
        const data = eventData(raw);
        if (isRelayable(type) && typeof at === 'string' && data) this.#relay(hooks, host, type, at, data);
      }
      return;
    }
    // One event as the add's script writes it (`run.queued`, in the add's MULTI).
    const { type, at, data: text } = fields;
    if (!isRelayable(type) || typeof at !== 'string' || typeof text !== 'string') return;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return;
    }
    const checked = eventData(data);
    if (checked) this.#relay(hooks, host, type, at, checked);
  }

  #relay(hooks: BackendHooks, host: string, type: string, at: string, data: EventData): void {
    hooks.relay(type as Exclude<EventType, 'run.log'>, at, { ...data, host } as AnyHostEvent['data'] & { host: string });
  }

  close(): void {
    this.#closed = true;
    if (this.#pending.length > 0) this.#flush();
  }
}
