import type { NotificationQuery } from '../contract/backend.js';
import type { Notification } from '../contract/notification.js';
import type { Page } from '../contract/run.js';

/** How many notifications are kept (in checkpoints, and for `GET /notifications`). */
const KEPT = 1000;

/** The recent notifications, oldest first; trimmed in bulk so a push stays O(1). */
export class NotificationLog {
  #items: Notification[] = [];

  /** Replaces the contents (loading a checkpoint). */
  reset(items: Notification[]): void {
    this.#items = items;
  }

  push(n: Notification): void {
    this.#items.push(n);
    if (this.#items.length > KEPT * 2) this.#items = this.#items.slice(-KEPT);
  }

  /** The newest ones, for a checkpoint. */
  recent(): Notification[] {
    return this.#items.slice(-KEPT);
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
