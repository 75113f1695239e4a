import type { DeliveryAttempt, DeliveryOutcome } from '../contract/attempt.js';
import type { Backend } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { type Delivery, type DeliveryStatus, deliveryOpen, incidentOf, type Notification, opensIncident } from '../contract/notification.js';
import type { DestinationView, TestResult } from '../contract/notify-config.js';
import type { Notifier } from '../notify/notifier.js';
import type { Bus } from './bus.js';

export type { DestinationView, TestResult } from '../contract/notify-config.js';

/** How long after an earlier delivery of its incident is due an ordered one looks again, and at most. */
const ORDER_WAIT_MS = 1000;
const MAX_ORDER_WAIT_MS = 60_000;

export interface DeliveriesOptions {
  bus: Bus;
  clock: Clock;
  logger: Logger;
  notifier: Notifier;
  backend(): Backend;
}

/** Outcomes of attempts so far on this host, by destination (for `/metrics`). */
export type DeliveryCounts = Record<string, Partial<Record<Exclude<DeliveryStatus, 'pending'>, number>>>;

/**
 * The host's side of delivered notifications: hands each attempt the backend schedules to the
 * notifier, turns recorded outcomes into events (`notification.delivered`, `notification.failed`)
 * and counts, and serves what the API shows (a notification, redeliver, destinations, a test).
 */
export class Deliveries {
  readonly #o: DeliveriesOptions;
  readonly #counts: DeliveryCounts = Object.create(null);

  constructor(options: DeliveriesOptions) {
    this.#o = options;
  }

  /**
   * `BackendHooks.deliver`. A delivery to a destination that keeps the order of its incident
   * (PagerDuty) waits, without an attempt, while an earlier notification of the same incident of
   * the other kind has its delivery there open: a resolve for the triggers before it, a trigger
   * for the resolves before it (so neither overtakes the other; triggers among themselves, and
   * resolves, go as they come). Looked at again a second after the last of those is next due, at
   * most a minute on; on one host also as soon as an attempt to the destination ends.
   */
  async deliver(attempt: DeliveryAttempt, signal: AbortSignal): Promise<DeliveryOutcome> {
    const { notification: n, delivery } = attempt;
    if (this.#o.notifier.ordered(delivery.destination)) {
      const earlier = await this.#o.backend().openBefore(delivery.destination, n.id, incidentOf(n));
      const opens = opensIncident(n);
      if (earlier.some((o) => opensIncident(o) !== opens)) {
        // Due once the last earlier one of either kind is (a resolve waiting itself keeps its old
        // `nextAt`: the trigger before it says when the chain moves).
        const now = this.#o.clock.now();
        const due = Math.max(
          ...earlier.map((o) => {
            const d = o.deliveries.find((x) => x.destination === delivery.destination && deliveryOpen(x));
            return d?.nextAt ? Date.parse(d.nextAt) : now;
          }),
        );
        const delayMs = Math.min(MAX_ORDER_WAIT_MS, Math.max(0, due - now) + ORDER_WAIT_MS);
        this.#o.logger.debug(
          { job: n.job, notification: n.id, destination: delivery.destination, waitsFor: earlier.map((o) => o.id), delayMs },
          'a delivery waits for the earlier ones of its incident',
        );
        return { status: 'waiting', delayMs };
      }
    }
    return this.#o.notifier.deliver(attempt, signal);
  }

  /** `BackendHooks.deliveryChanged`: an attempt's outcome (or a redeliver) is on record. */
  changed(n: Notification, d: Delivery): void {
    if (d.status === 'pending') return;
    const counts = (this.#counts[d.destination] ??= {});
    counts[d.status] = (counts[d.status] ?? 0) + 1;
    const data = { job: n.job, runId: n.runId, id: n.id, destination: d.destination, deliveryId: d.id, attempts: d.attempts };
    if (d.status === 'delivered') this.#o.bus.emit('notification.delivered', data);
    else if (d.status === 'dead') this.#o.bus.emit('notification.failed', { ...data, error: d.lastError ?? { code: 'DELIVERY_FAILED', message: 'failed' } });
  }

  counts(): DeliveryCounts {
    return this.#counts;
  }

  /** Deliveries waiting for an attempt (every host's, in cluster mode). */
  open(): number {
    return this.#o.backend().openDeliveries();
  }

  async get(id: string): Promise<Notification> {
    const n = await this.#o.backend().getNotification(id);
    if (!n) throw new HostError('NOTIFICATION_NOT_FOUND', `no notification with id "${id}"`, { id });
    return n;
  }

  /** Queues the deliveries of a notification again (all, or the one to `destination`). */
  async redeliver(id: string, destination?: string): Promise<Notification> {
    const n = await this.#o.backend().redeliver(id, destination);
    if (n) return n;
    await this.get(id);
    throw new HostError(
      'DESTINATION_NOT_FOUND',
      destination === undefined
        ? `notification "${id}" has no delivery (no destination took it)`
        : `notification "${id}" has no delivery to destination "${destination}"`,
      { id },
    );
  }

  destinations(): DestinationView[] {
    return this.#o.notifier.destinations();
  }

  async test(name: string): Promise<TestResult> {
    const result = await this.#o.notifier.test(name);
    if (!result) throw new HostError('DESTINATION_NOT_FOUND', `no destination "${name}" in notifications.destinations`, { destination: name });
    return result;
  }
}
