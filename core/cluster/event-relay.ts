import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { BackendHooks } from '../contract/backend.js';
import { type AnyHostEvent, EVENT_TYPES, type EventType } from '../contract/events.js';
import type { Logger } from '../contract/logger.js';
import { CLUSTER_STREAM_MAXLEN } from './keys.js';

/**
 * Events from every host to every host (SPEC §11): each host appends its own events to the
 * cluster stream (one XADD each, sent in one pipeline per turn of the event loop), and reads the
 * stream with its one blocking XREAD (`StreamReader`), where the entries of other hosts come back
 * to the engine to be emitted with `data.host`. A stream, not pub/sub: a host that reconnects goes
 * on from the last entry it read, and entries of all hosts keep one order.
 */

/** The `event` field of a shared event's stream entry (cancel requests share the stream). */
export const HOST_EVENT = 'host.event';

const relayable = new Set<string>(EVENT_TYPES.filter((t) => t !== 'run.log'));

const entry = z.object({
  host: z.string().min(1),
  type: z.string().refine((t) => relayable.has(t)),
  at: z.string(),
  data: z.string(),
});

const eventData = z.looseObject({ job: z.string().nullable() });

export class EventRelay {
  readonly #redis: Redis;
  readonly #stream: string;
  readonly #hostId: string;
  readonly #logger: Logger;
  #pending: string[][] = [];
  #closed = false;

  constructor(redis: Redis, stream: string, hostId: string, logger: Logger) {
    this.#redis = redis;
    this.#stream = stream;
    this.#hostId = hostId;
    this.#logger = logger;
  }

  /** Appends one of this host's events to the stream (with those of the same turn, in one pipeline). */
  share(event: AnyHostEvent): void {
    if (this.#closed || event.type === 'run.log') return;
    if (this.#pending.length === 0) queueMicrotask(() => this.#flush());
    this.#pending.push(['event', HOST_EVENT, 'host', this.#hostId, 'type', event.type, 'at', event.at, 'data', JSON.stringify(event.data)]);
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    const pipeline = this.#redis.pipeline();
    for (const fields of batch) pipeline.xadd(this.#stream, 'MAXLEN', '~', String(CLUSTER_STREAM_MAXLEN), '*', ...fields);
    // The patient connection queues them while Redis is out of reach; they are sent once it is back.
    pipeline.exec().catch((err: unknown) => this.#logger.warn({ err, events: batch.length }, 'could not share events with the other hosts'));
  }

  /** A shared event read from the stream: another host's goes to the engine; this host's own is skipped. */
  receive(fields: Record<string, string>, hooks: BackendHooks): void {
    const parsed = entry.safeParse(fields);
    if (!parsed.success || parsed.data.host === this.#hostId) return;
    let data: unknown;
    try {
      data = JSON.parse(parsed.data.data);
    } catch {
      return;
    }
    const checked = eventData.safeParse(data);
    if (!checked.success) return;
    const type = parsed.data.type as Exclude<EventType, 'run.log'>;
    hooks.relay(type, parsed.data.at, { ...checked.data, host: parsed.data.host } as AnyHostEvent['data'] & { host: string });
  }

  close(): void {
    this.#closed = true;
    if (this.#pending.length > 0) this.#flush();
  }
}
