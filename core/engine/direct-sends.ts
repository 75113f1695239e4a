import type { Clock, Timer } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Delivery, Notification } from '../contract/notification.js';
import type { Notifier } from '../notify/notifier.js';

export interface DirectSendsOptions {
  clock: Clock;
  logger: Logger;
  notifier: Pick<Notifier, 'deliver'>;
}

/**
 * Notifications that cannot wait for the backend: the alert that the backend is out of reach, in
 * cluster mode, where Redis is what records and queues notifications (it would reach its
 * receivers only once Redis is back, with its own end). Sent by this host alone, nothing
 * recorded: each delivery tried now, and again in memory as `notifications.retry` says (the
 * notifier's outcome), until delivered or dead, or the host stops.
 */
export class DirectSends {
  readonly #o: DirectSendsOptions;
  readonly #timers = new Set<Timer>();
  readonly #stop = new AbortController();

  constructor(options: DirectSendsOptions) {
    this.#o = options;
  }

  send(n: Notification): void {
    for (const delivery of n.deliveries) void this.#attempt(n, delivery, 1);
  }

  /** No more attempts: those in flight are cut short, the waiting ones dropped. */
  stop(): void {
    for (const timer of this.#timers) timer.cancel();
    this.#timers.clear();
    this.#stop.abort();
  }

  async #attempt(n: Notification, delivery: Delivery, attempt: number): Promise<void> {
    if (this.#stop.signal.aborted) return;
    const outcome = await this.#o.notifier
      .deliver({ notification: n, delivery, attempt }, this.#stop.signal)
      .catch((err: unknown) => void this.#o.logger.error({ err, notification: n.id }, 'could not send the notification'));
    if (outcome?.status !== 'retrying' || this.#stop.signal.aborted) return;
    const timer = this.#o.clock.setTimer(outcome.delayMs, () => {
      this.#timers.delete(timer);
      void this.#attempt(n, delivery, attempt + 1);
    });
    this.#timers.add(timer);
  }
}
