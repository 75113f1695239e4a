import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { type Clock, isoTime } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import { type AnyHostEvent, EVENT_TYPES, type EventDataMap, type EventType, type HostEvent, isEventPattern } from '../contract/events.js';
import { matchesAny } from '../contract/glob.js';
import type { Logger } from '../contract/logger.js';
import { isJobPattern, notAJobPattern } from '../contract/plugin-schema.js';
import { eventIterator, type IteratorBounds } from './event-iterator.js';
import { EventRing } from './event-ring.js';

export type { IteratorBounds } from './event-iterator.js';

/**
 * `job=`, `run=` and `type=` filters as the WebSocket and `events()` take them (one value or
 * several); job names may be `*` globs (`deploy-*`), types may end in `.*`.
 */
export interface EventFilter {
  job?: string | readonly string[] | undefined;
  /** Only events of these runs. */
  run?: string | readonly string[] | undefined;
  type?: string | readonly string[] | undefined;
  /**
   * Also `run.log` events (log lines), which no filter matches unless asked for: here, or by naming
   * `run.log` in `type`. They can come at ~20 a second per running run.
   */
  logs?: boolean | undefined;
}

/** A filter's values as lists, checked: a library caller's `{ type: 'run.failed' }` or a typo is no silent match-nothing. */
interface Filter {
  job: readonly string[];
  run: readonly string[];
  type: readonly string[];
  logs: boolean;
}

function listOf(value: unknown, field: string): readonly string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string'))
    throw new HostError('INVALID_BODY', `${field}: expected a string or an array of strings`);
  return list;
}

function checked(filter: EventFilter): Filter {
  const type = listOf(filter.type, 'type');
  for (const t of type) {
    if (!isEventPattern(t)) throw new HostError('INVALID_BODY', `type: unknown event type "${t}" (an event type such as run.failed, or a glob such as run.*)`);
  }
  const job = listOf(filter.job, 'job');
  for (const j of job) {
    if (!isJobPattern(j)) throw new HostError('INVALID_BODY', `job: ${notAJobPattern(j)}`);
  }
  return { job, run: listOf(filter.run, 'run'), type, logs: filter.logs === true };
}

/** Whether a filter asks for `run.log` events. */
const wantsLogs = (filter: Filter): boolean => filter.logs || filter.type.includes('run.log');

export type Listener<E> = (event: E) => void;

type EmitterMap = { [K in EventType]: [HostEvent<K>] } & { '*': [AnyHostEvent] };

/** Compiles a filter once into a predicate; an empty filter matches everything. */
export function compileFilter(filter: EventFilter = {}): (event: AnyHostEvent) => boolean {
  return matcher(checked(filter));
}

function matcher(filter: Filter): (event: AnyHostEvent) => boolean {
  const names = filter.job.filter((j) => !j.includes('*'));
  const globs = filter.job.filter((j) => j.includes('*'));
  const jobs = filter.job.length > 0 ? new Set(names) : null;
  const runs = filter.run.length > 0 ? new Set(filter.run) : null;
  const logs = wantsLogs(filter);
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const t of filter.type) {
    if (t === '*') prefixes.push('');
    else if (t.endsWith('.*')) prefixes.push(t.slice(0, -1));
    else exact.add(t);
  }
  const anyType = exact.size === 0 && prefixes.length === 0;
  return (event) => {
    // Whatever a client filters, some of what it asked for may be among the lost events: it reloads.
    if (event.type === 'events.gap') return true;
    if (jobs && (event.data.job === null || !(jobs.has(event.data.job) || (globs.length > 0 && matchesAny(globs, event.data.job))))) return false;
    if (runs && !('runId' in event.data && event.data.runId !== undefined && runs.has(event.data.runId))) return false;
    // Asked for, log lines come whatever the type filter says (`logs` means "these events, and their lines").
    if (event.type === 'run.log') return logs;
    if (anyType || exact.has(event.type)) return true;
    for (const p of prefixes) if (event.type.startsWith(p)) return true;
    return false;
  };
}

export interface BusOptions {
  clock: Clock;
  logger: Logger;
  /** How many recent events are kept for replay by seq (default 10,000). */
  capacity?: number;
  /** Their estimated JSON bytes at most (default 16 MiB): the oldest leave first. */
  maxBytes?: number;
}

/**
 * The typed event bus: wraps every payload as `{ seq, type, at, data }`, keeps the newest events
 * in a ring for `since` replay (bounded in count and bytes), and isolates listeners so one that throws never breaks another.
 */
export class Bus {
  readonly #emitter = new EventEmitter<EmitterMap>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #ring: EventRing;
  #seq = 0;
  /**
   * This bus's numbering: a new one at every start of the host, whose seq counts from 1 again. A
   * client that reconnects names the boot its `since` counts in (the WebSocket's `boot`), so a
   * restart that has already passed that seq is not taken for the same numbering.
   */
  readonly boot = randomBytes(6).toString('hex');

  constructor(options: BusOptions) {
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#ring = new EventRing(options.capacity ?? 10_000, options.maxBytes ?? 16 * 1024 * 1024);
  }

  /** The seq of the newest event (0 before the first). */
  get seq(): number {
    return this.#seq;
  }

  emit<T extends Exclude<EventType, 'run.log'>>(type: T, data: EventDataMap[T]): HostEvent<T> {
    const event = { seq: ++this.#seq, type, at: isoTime(this.#clock.now()), data } as HostEvent<T>;
    this.#ring.push(event as AnyHostEvent);
    // eventemitter3's typing cannot relate a generic T to its tuple; the map above keeps it honest.
    (this.#emitter.emit as (t: string, e: unknown) => boolean)(type, event);
    this.#emitter.emit('*', event as AnyHostEvent);
    return event;
  }

  /**
   * An event another host emitted (cluster mode), with `data.host` naming it: numbered in this
   * bus's own `seq` (so `since` replay works per connection as for local events) and kept for
   * replay; its `at` stays the time it happened there.
   */
  relay(type: Exclude<EventType, 'run.log'>, at: string, data: AnyHostEvent['data'] & { host: string }): AnyHostEvent {
    const event = { seq: ++this.#seq, type, at, data } as AnyHostEvent;
    this.#ring.push(event);
    (this.#emitter.emit as (t: string, e: unknown) => boolean)(type, event);
    this.#emitter.emit('*', event);
    return event;
  }

  /**
   * A `run.log` event: to its own listeners and to subscriptions that ask for logs, not to `'*'`;
   * not numbered (its seq is the last numbered event's, so `since=` is unaffected) and not kept
   * for replay, so a chatty handler never pushes state changes out of the replay buffer.
   */
  emitLog(data: EventDataMap['run.log']): HostEvent<'run.log'> {
    const event: HostEvent<'run.log'> = { seq: this.#seq, type: 'run.log', at: isoTime(this.#clock.now()), data };
    (this.#emitter.emit as (t: string, e: unknown) => boolean)('run.log', event);
    return event;
  }

  /** Listens to one type, or to every event with `'*'`. Returns the unsubscribe function. */
  on<T extends EventType>(type: T, listener: Listener<HostEvent<T>>): () => void;
  on(type: '*', listener: Listener<AnyHostEvent>): () => void;
  on(type: string, listener: Listener<never>): () => void {
    // A library caller's typo would listen for ever to nothing; a listener that is no function would fail at every event.
    if (type !== '*' && !(EVENT_TYPES as readonly string[]).includes(type))
      throw new HostError('INVALID_BODY', `unknown event type "${String(type)}" ('*' for every event)`);
    if (typeof listener !== 'function') throw new HostError('INVALID_BODY', 'listener: expected a function');
    const safe = (event: AnyHostEvent): void => {
      try {
        const out = (listener as Listener<AnyHostEvent>)(event) as unknown;
        if (out instanceof Promise) out.catch((err: unknown) => this.#listenerFailed(event, err));
      } catch (err) {
        this.#listenerFailed(event, err);
      }
    };
    const emitter = this.#emitter as unknown as EventEmitter<Record<string, [AnyHostEvent]>>;
    emitter.on(type, safe);
    return () => {
      emitter.off(type, safe);
    };
  }

  /**
   * Subscribes with a filter, first replaying buffered events after `since`. Replay and
   * subscription happen in one synchronous step, so nothing is missed or sent twice.
   * `gap` is true when events after `since` have already left the buffer.
   */
  subscribe(given: EventFilter, listener: Listener<AnyHostEvent>, since?: number): { gap: boolean; close: () => void } {
    const filter = checked(given);
    const match = matcher(filter);
    let gap = false;
    if (since !== undefined) {
      const replay = this.since(since);
      gap = replay.gap;
      for (const event of replay.events) if (match(event)) listener(event);
    }
    const deliver = (event: AnyHostEvent): void => {
      if (match(event)) listener(event);
    };
    const closeAll = this.on('*', deliver);
    if (!wantsLogs(filter)) return { gap, close: closeAll };
    const closeLogs = this.on('run.log', deliver);
    return {
      gap,
      close: () => {
        closeAll();
        closeLogs();
      },
    };
  }

  /** Buffered events with seq > `since`, oldest first. */
  since(since: number): { events: AnyHostEvent[]; gap: boolean } {
    const oldest = this.#ring.first;
    // A seq from the future (the host restarted and counts from 1 again) replays the whole buffer.
    const from = since > this.#seq ? oldest : Math.max(since + 1, oldest);
    const gap = since > this.#seq || since + 1 < oldest;
    const events: AnyHostEvent[] = [];
    for (let s = from; s <= this.#seq; s++) {
      const event = this.#ring.get(s);
      if (event) events.push(event);
    }
    return { events, gap };
  }

  /** What the replay buffer holds: events and their estimated bytes. */
  get buffered(): { events: number; bytes: number } {
    return this.#ring.stats;
  }

  /**
   * Matching events as an async iterator, after replaying those since `since`. A consumer that
   * falls behind by more than `bounds` ends with EVENTS_OVERFLOW (see `event-iterator.ts`).
   */
  iterate(filter: EventFilter, since?: number, bounds?: IteratorBounds): AsyncIterableIterator<AnyHostEvent> {
    checked(filter); // refused here, at the call, not at the first read
    return eventIterator(
      (listener) => this.subscribe(filter, listener, since),
      (event) => this.#ring.sizeOf(event),
      since ?? this.#seq,
      bounds,
    );
  }

  listenerCount(): number {
    return this.#emitter.listenerCount('*');
  }

  #listenerFailed(event: AnyHostEvent, err: unknown): void {
    this.#logger.error({ err, event: event.type, seq: event.seq }, 'event listener threw; the bus carries on');
  }
}
