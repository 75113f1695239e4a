import type { NotificationQuery } from '../contract/backend.js';
import { deliveryOpen, type Notification } from '../contract/notification.js';
import type { Page } from '../contract/run.js';

/** How many notifications are kept (in checkpoints, and for `GET /notifications`) besides those with open deliveries. */
const KEPT = 1000;

function hasOpen(n: Notification): boolean {
  return n.deliveries.some(deliveryOpen);
}

/**
 * The recent notifications, oldest first, and every older one whose deliveries are still open
 * (they are the outbox: what a restart resumes). A record saved again (a delivery's new state)
 * replaces the one with its id. Trimmed in bulk so a save stays O(1).
 */
export class NotificationLog {
  #items: Notification[] = [];
  readonly #byId = new Map<string, Notification>();
  /** Items at the last trim that had to be kept for their open deliveries. */
  #kept = 0;

  /** Replaces the contents (loading a checkpoint). */
  reset(items: Notification[]): void {
    this.#items = [];
    this.#byId.clear();
    for (const n of items) this.push(n);
  }

  /** Adds a notification, or replaces the record of one with its id (in place: its position stays). */
  push(n: Notification): void {
    // Records written before deliveries existed have none.
    n.deliveries ??= [];
    const existing = this.#byId.get(n.id);
    if (existing) {
      if (existing !== n) Object.assign(existing, n);
      return;
    }
    this.#items.push(n);
    this.#byId.set(n.id, n);
    if (this.#items.length > this.#kept + KEPT * 2) this.#trim();
  }

  #trim(): void {
    const cut = this.#items.length - KEPT;
    const next: Notification[] = [];
    for (let i = 0; i < this.#items.length; i++) {
      const n = this.#items[i]!;
      if (i >= cut || hasOpen(n)) next.push(n);
      else this.#byId.delete(n.id);
    }
    this.#kept = next.length - Math.min(KEPT, next.length);
    this.#items = next;
  }

  /** The live record (not a copy): the outbox updates deliveries on it, then saves it again. */
  get(id: string): Notification | undefined {
    return this.#byId.get(id);
  }

  /** The newest ones and every one with open deliveries, for a checkpoint. */
  recent(): Notification[] {
    const cut = this.#items.length - KEPT;
    return this.#items.filter((n, i) => i >= cut || hasOpen(n));
  }

  /** Every notification with an open delivery, oldest first (loading the outbox). */
  open(): Notification[] {
    return this.#items.filter(hasOpen);
  }

  /** Newest first; `next` is the cursor for `before`. */
  list(query: NotificationQuery): Page<Notification> {
    const limit = Math.max(1, Math.min(query.limit ?? 50, KEPT));
    const items: Notification[] = [];
    let more = false;
    for (let i = this.#items.length - 1; i >= 0; i--) {
      const n = this.#items[i]!;
      if (query.before !== undefined && n.id >= query.before) continue;
      if (query.job !== undefined && n.job !== query.job) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(structuredClone(n));
    }
    const page: Page<Notification> = { items };
    if (more) page.next = items.at(-1)!.id;
    return page;
  }
}
