import { setMaxListeners } from 'node:events';
import type { DeliveryOutcome } from '../contract/attempt.js';
import type { BackendHooks } from '../contract/backend.js';
import { type Clock, isoTime, type Timer, whenAborted } from '../contract/clock.js';
import { DueHeap } from '../contract/due-heap.js';
import type { Logger } from '../contract/logger.js';
import { deliveryOpen, type Notification } from '../contract/notification.js';

/** What the outbox needs of the store: the live records, and saving one again. */
export interface OutboxStore {
  notification(id: string): Notification | undefined;
  saveNotification(n: Notification): Promise<void>;
}

export interface OutboxOptions {
  clock: Clock;
  logger: Logger;
  /** Attempts in flight at once. */
  concurrency: number;
  store: OutboxStore;
}

interface Due {
  nid: string;
  did: string;
  destination: string;
  /** The series it belongs to: a redeliver starts a new one, and the old one's entries are dropped. */
  series: number;
}

/**
 * The local backend's deliveries: every open delivery of the recorded notifications waits in a
 * heap by due time, under one timer; at most `concurrency` attempts run at once, apart from
 * runs, and at most half of them (rounded up) to one destination: a receiver that hangs until the
 * timeout holds its share, never the slots of the others. Each outcome is saved (the notification record again, durable) before the next attempt
 * is queued, so a kill -9 resumes every open delivery at its `nextAt` on the next start.
 */
export class Outbox {
  readonly #o: OutboxOptions;
  readonly #heap = new DueHeap<Due>();
  /** Open deliveries by id → their current series. */
  readonly #open = new Map<string, number>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Attempts in flight by destination. */
  readonly #busy = new Map<string, number>();
  /**
   * Due deliveries taken off the heap while their destination had its share in flight, in due
   * order: one goes back each time an attempt to that destination ends. Each is taken off the heap
   * once, so a backlog to one busy destination costs the others nothing per attempt.
   */
  readonly #parked = new Map<string, { items: Array<{ at: number; due: Due }>; head: number }>();
  /**
   * Deliveries that answered `waiting` (an earlier one of their incident to the same destination
   * is open), by destination: looked at again as soon as an attempt to that destination ends, or
   * at their `delayMs` at the latest (each wake starts a series, so only one of the two goes).
   */
  readonly #waiting = new Map<string, Map<string, Due>>();
  readonly #share: number;
  readonly #abort = new AbortController();
  #hooks: BackendHooks | undefined;
  #series = 0;
  #running = 0;
  #timer: Timer | undefined;
  #timerAt = Infinity;
  #started = false;
  #closed = false;
  /** Stopping (`settle`): attempts go on, the retries they ask for wait for the next start. */
  #settling = false;

  constructor(options: OutboxOptions) {
    this.#o = options;
    this.#share = Math.max(1, Math.ceil(options.concurrency / 2));
    // Every attempt in flight listens on it (and lets go when it settles): as many as `concurrency`.
    setMaxListeners(0, this.#abort.signal);
  }

  /** Deliveries waiting for an attempt or in one. */
  get size(): number {
    return this.#open.size;
  }

  attach(hooks: BackendHooks): void {
    this.#hooks = hooks;
  }

  /** Queues every open delivery of `n` (or the one to `destination`) at its `nextAt`: a new notification, one loaded at open, a redeliver. */
  add(n: Notification, destination?: string): void {
    const now = this.#o.clock.now();
    for (const d of n.deliveries) {
      // A redeliver to one destination queues that one: another's attempt may be in flight, and a
      // new series for it would drop that attempt's outcome and send it again.
      if (!deliveryOpen(d) || (destination !== undefined && d.destination !== destination)) continue;
      const series = ++this.#series;
      this.#open.set(d.id, series);
      this.#heap.push(d.nextAt === null ? now : Date.parse(d.nextAt), { nid: n.id, did: d.id, destination: d.destination, series });
    }
    this.#pump();
  }

  /** Puts the deliveries of `n` (or the one to `destination`) back to pending, as a new series; false when none matched. */
  redeliver(n: Notification, destination?: string): boolean {
    const now = isoTime(this.#o.clock.now());
    let any = false;
    for (const d of n.deliveries) {
      if (destination !== undefined && d.destination !== destination) continue;
      // A series of its own at once: an attempt in flight that ends while the record is saved must
      // not write its outcome over the pending state (`add` then queues it).
      if (this.#open.has(d.id)) this.#open.set(d.id, ++this.#series);
      Object.assign(d, { status: 'pending', attempts: 0, nextAt: now, deliveredAt: null });
      any = true;
    }
    return any;
  }

  /** Starts making attempts. */
  start(): void {
    this.#started = true;
    this.#pump();
  }

  /**
   * The host is stopping: the deliveries of `ids` (the digests the stop recorded) get their first
   * attempt, and this resolves once each has had it, or when `signal` aborts (the stop's bound).
   * Nothing else is waited for: with no digest, a stop does not wait on a receiver that hangs. A
   * retry an attempt asks for waits for the next start: one attempt, not a retry loop in a stop.
   */
  async settle(ids: readonly string[], signal: AbortSignal): Promise<void> {
    if (ids.length === 0) return;
    this.#settling = true;
    this.#pump();
    const bound = whenAborted(signal);
    const unattempted = (): boolean => ids.some((id) => this.#o.store.notification(id)?.deliveries.some((d) => deliveryOpen(d) && d.attempts === 0));
    // Each attempt that ends pumps the next due one into the set before its promise settles.
    while (unattempted() && this.#inFlight.size > 0 && !signal.aborted) {
      await Promise.race([...[...this.#inFlight].map((p) => p.catch(() => undefined)), bound]);
    }
  }

  /** Stops: no new attempt; one in flight is aborted (and made again after the next start). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#abort.abort();
    await Promise.allSettled([...this.#inFlight]);
    this.#heap.clear();
    this.#parked.clear();
  }

  #pump(): void {
    if (!this.#started || this.#closed) return;
    const now = this.#o.clock.now();
    while (this.#running < this.#o.concurrency) {
      const at = this.#heap.peek();
      const due = this.#heap.popDue(now);
      if (!due) break;
      if (this.#open.get(due.did) !== due.series) continue;
      if ((this.#busy.get(due.destination) ?? 0) >= this.#share) {
        const parked = this.#parked.get(due.destination);
        if (parked) parked.items.push({ at, due });
        else this.#parked.set(due.destination, { items: [{ at, due }], head: 0 });
      } else this.#attempt(due);
    }
    this.#arm();
  }

  #arm(): void {
    // A full set of attempts in flight: the next one to end pumps again.
    if (this.#running >= this.#o.concurrency) return;
    const at = this.#heap.peek();
    if (at === Infinity || at >= this.#timerAt) return;
    this.#timer?.cancel();
    this.#timerAt = at;
    this.#timer = this.#o.clock.setTimer(Math.max(0, at - this.#o.clock.now()), () => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#pump();
    });
  }

  #attempt(due: Due): void {
    const n = this.#o.store.notification(due.nid);
    const d = n?.deliveries.find((x) => x.id === due.did);
    if (!n || !d || !deliveryOpen(d)) {
      this.#open.delete(due.did);
      return;
    }
    // Taken now (by its timer, or woken): no longer waiting.
    this.#waiting.get(due.destination)?.delete(due.did);
    this.#running++;
    this.#busy.set(due.destination, (this.#busy.get(due.destination) ?? 0) + 1);
    let waited = false;
    const made = this.#make(n, d.id, d.attempts + 1, due)
      .then((w) => void (waited = w))
      .finally(() => {
        this.#running--;
        const left = this.#busy.get(due.destination)! - 1;
        if (left > 0) this.#busy.set(due.destination, left);
        else this.#busy.delete(due.destination);
        this.#inFlight.delete(made);
        this.#unpark(due.destination);
        // An attempt ended: what waits for it may go (one that only answered waiting ended none).
        if (!waited) this.#wake(due.destination);
        this.#pump();
      });
    this.#inFlight.add(made);
  }

  /** An attempt to `destination` ended: the deliveries waiting there are looked at again now (a new series each: the timer's entry is dropped). */
  #wake(destination: string): void {
    const waiting = this.#waiting.get(destination);
    if (!waiting || this.#closed) return;
    this.#waiting.delete(destination);
    const now = this.#o.clock.now();
    for (const [did, due] of waiting) {
      // Taken by its timer meanwhile, ended, or a redeliver started a series of its own.
      if (this.#open.get(did) !== due.series) continue;
      const series = ++this.#series;
      this.#open.set(did, series);
      this.#heap.push(now, { ...due, series });
    }
  }

  /** A slot of `destination`'s share is free: its next parked delivery still open goes back on the heap, at its due time. */
  #unpark(destination: string): void {
    const parked = this.#parked.get(destination);
    if (!parked || this.#closed) return;
    while (parked.head < parked.items.length) {
      const { at, due } = parked.items[parked.head]!;
      parked.items[parked.head++] = undefined as never;
      // A redeliver started a new series meanwhile, or it ended: nothing to put back.
      if (this.#open.get(due.did) !== due.series) continue;
      this.#heap.push(at, due);
      break;
    }
    if (parked.head === parked.items.length) this.#parked.delete(destination);
    else if (parked.head > 1024 && parked.head * 2 > parked.items.length) {
      parked.items = parked.items.slice(parked.head);
      parked.head = 0;
    }
  }

  /** One attempt of delivery `did`; resolves true when it only answered `waiting` (no attempt made). */
  async #make(n: Notification, did: string, attempt: number, due: Due): Promise<boolean> {
    const hooks = this.#hooks!;
    const d = n.deliveries.find((x) => x.id === did)!;
    let outcome: DeliveryOutcome;
    try {
      // The live records, not copies: the engine reads them and keeps nothing (see BackendHooks.deliver).
      outcome = await hooks.deliver({ notification: n, delivery: d, attempt }, this.#abort.signal);
    } catch (err) {
      this.#o.logger.error({ err, notification: n.id, destination: d.destination }, 'a delivery attempt threw; trying again later');
      outcome = { status: 'retrying', delayMs: 60_000, error: { code: 'DELIVERY_FAILED', message: 'the attempt failed inside the host' } };
    }
    // A redeliver meanwhile started a new series; a stop cut the attempt short (made again after the next start).
    if (this.#open.get(did) !== due.series || this.#closed) return outcome.status === 'waiting';
    const now = this.#o.clock.now();
    if (outcome.status === 'waiting') {
      // No attempt made, its record as it was: looked at again once an attempt to its destination
      // ends (the earlier one's, most likely), or at `delayMs`.
      const waiting = { ...due, series: ++this.#series };
      this.#open.set(did, waiting.series);
      // While a stop settles, no timer: an attempt that ends meanwhile still wakes it.
      if (!this.#settling) this.#heap.push(now + outcome.delayMs, waiting);
      const byId = this.#waiting.get(due.destination);
      if (byId) byId.set(did, waiting);
      else this.#waiting.set(due.destination, new Map([[did, waiting]]));
      return true;
    }
    d.attempts = attempt;
    if (outcome.status === 'delivered') {
      Object.assign(d, { status: 'delivered', deliveredAt: isoTime(now), nextAt: null });
      this.#open.delete(did);
    } else if (outcome.status === 'dead') {
      Object.assign(d, { status: 'dead', lastError: outcome.error, nextAt: null });
      this.#open.delete(did);
    } else {
      Object.assign(d, { status: 'retrying', lastError: outcome.error, nextAt: isoTime(now + outcome.delayMs) });
    }
    try {
      await this.#o.store.saveNotification(n);
    } catch (err) {
      // The store retries the write itself; the state above stands in memory meanwhile.
      this.#o.logger.error({ err, notification: n.id, destination: d.destination }, 'could not record a delivery outcome yet');
    }
    hooks.deliveryChanged(n, d);
    if (outcome.status === 'retrying' && !this.#closed && !this.#settling) this.#heap.push(now + outcome.delayMs, due);
    return false;
  }
}
