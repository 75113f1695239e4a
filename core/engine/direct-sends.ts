import { setMaxListeners } from 'node:events';
import { type Clock, settlesWithin, whenAborted } from '../contract/clock.js';
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
 * notifier's outcome), until delivered or dead, or the host stops. `sending` tells which are
 * still going on, so the alert's end can wait for its start (a resolve must not reach PagerDuty
 * before its trigger).
 */
export class DirectSends {
  readonly #o: DirectSendsOptions;
  readonly #stop = new AbortController();
  /** See `sending`. */
  readonly #sending = new Map<string, Map<string, Promise<void>>>();

  /** Settles when the sends stop: what a retry's wait also ends on. */
  readonly #stopped: Promise<void>;

  constructor(options: DirectSendsOptions) {
    this.#o = options;
    // Every attempt in flight listens on it.
    setMaxListeners(0, this.#stop.signal);
    this.#stopped = whenAborted(this.#stop.signal);
  }

  /** Sends `n` to each of its destinations. */
  send(n: Notification): void {
    const sending = new Map(n.deliveries.map((delivery) => [delivery.destination, this.#deliver(n, delivery)]));
    // A host alert's: what its end waits for, by destination, while each delivery goes on (the newest start's).
    if (n.condition !== undefined) this.#sending.set(n.condition, sending);
    for (const [name, done] of sending) void done.then(() => sending.delete(name));
  }

  /**
   * The deliveries of host alert `condition` still being sent, by destination: each promise
   * settles as its delivery ends (delivered, dead, or given up at a stop).
   */
  sending(condition: string): ReadonlyMap<string, Promise<void>> | undefined {
    return this.#sending.get(condition);
  }

  /** No more attempts: those in flight are cut short, the waiting ones dropped. */
  stop(): void {
    this.#stop.abort();
  }

  async #deliver(n: Notification, delivery: Delivery): Promise<void> {
    for (let attempt = 1; !this.#stop.signal.aborted; attempt++) {
      const outcome = await this.#o.notifier
        .deliver({ notification: n, delivery, attempt }, this.#stop.signal)
        .catch((err: unknown) => void this.#o.logger.error({ err, notification: n.id }, 'could not send the notification'));
      if (outcome?.status !== 'retrying') return;
      // The retry's delay on the clock, ended early by a stop.
      await settlesWithin(this.#o.clock, outcome.delayMs, this.#stopped);
    }
  }
}
