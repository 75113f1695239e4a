import type { Logger } from '../contract/logger.js';

/** Events and log lines a host may hold for Redis while it is out of reach (default). */
export const RELAY_BACKLOG_MAX = 20_000;

/**
 * What this host handed to Redis to share (its events for the other hosts, its runs' log lines)
 * and Redis has not acknowledged yet. The patient connection queues commands while Redis is out
 * of reach, so during an outage this would grow with every event and log line: past `max` items
 * new ones are dropped and counted (`jobhost_relay_dropped_total`), never the host's memory.
 * Nothing a run's outcome depends on goes through here: runs, their ends and notifications are
 * written apart, and wait for Redis.
 */
export class RelayBacklog {
  readonly #max: number;
  readonly #logger: Logger;
  #pending = 0;
  #dropping = false;
  /** Items dropped since the process started. */
  dropped = 0;

  constructor(logger: Logger, max = RELAY_BACKLOG_MAX) {
    this.#logger = logger;
    this.#max = max;
  }

  /** For the backend's stats (`jobhost_relay_dropped_total`). */
  stats(): { relayDropped: number } {
    return { relayDropped: this.dropped };
  }

  /** Items handed to Redis and not yet acknowledged. */
  get pending(): number {
    return this.#pending;
  }

  /** Takes `n` items in; false, and they are counted as dropped, when that would pass the bound. */
  take(n: number): boolean {
    if (this.#pending + n > this.#max) {
      this.dropped += n;
      if (!this.#dropping) {
        this.#dropping = true;
        this.#logger.warn(
          { pending: this.#pending, max: this.#max },
          'Redis has not taken the events and log lines sent to it: dropping new ones until it does',
        );
      }
      return false;
    }
    this.#pending += n;
    return true;
  }

  /** `n` items taken earlier reached Redis (or failed for good). */
  settle(n: number): void {
    this.#pending -= n;
    if (this.#dropping && this.#pending === 0) {
      this.#dropping = false;
      this.#logger.info({ dropped: this.dropped }, 'Redis takes events and log lines again');
    }
  }
}
