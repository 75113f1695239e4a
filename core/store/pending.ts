import type { AuditRecord } from '../contract/audit.js';
import type { JobState } from '../contract/backend.js';
import type { Notification } from '../contract/notification.js';
import type { DamageReport } from '../contract/store-health.js';
import type { Batch } from './commit-batch.js';

/**
 * What the next commit writes to the journal besides runs: job flags, notifications, damage
 * reports and audit records, each marked here when saved. A commit takes them all; one whose
 * journal write failed puts them back, ahead of what was saved meanwhile.
 */
export class Pending {
  #jobs = new Set<string>();
  #notifications: Notification[] = [];
  #damage: DamageReport[] = [];
  #audit: AuditRecord[] = [];

  job(name: string): void {
    this.#jobs.add(name);
  }

  notification(n: Notification): void {
    // Saved again before the commit (a delivery's new state): one line carries the latest.
    if (this.#notifications.at(-1) !== n) this.#notifications.push(n);
  }

  damage(...reports: DamageReport[]): void {
    this.#damage.push(...reports);
  }

  audit(record: AuditRecord): void {
    this.#audit.push(record);
  }

  /** Everything marked, with each job's flags as they are now. */
  take(state: (job: string) => JobState | undefined): Omit<Batch, 'runs'> {
    const taken: Omit<Batch, 'runs'> = {
      jobs: [...this.#jobs].map((name) => {
        const r = state(name);
        return [
          name,
          {
            enabled: r?.enabled ?? null,
            lastFireAt: r?.lastFireAt ?? null,
            missedThrough: r?.missedThrough ?? null,
            ...(r?.missedWatches && { missedWatches: r.missedWatches }),
            ...(r?.slowTold && { slowTold: r.slowTold }),
          },
        ];
      }),
      notifications: this.#notifications,
      damage: this.#damage,
      audit: this.#audit,
    };
    this.#jobs = new Set();
    this.#notifications = [];
    this.#damage = [];
    this.#audit = [];
    return taken;
  }

  /** What a failed commit took: written with the next one (job flags are read again then). */
  putBack(taken: Omit<Batch, 'runs'>): void {
    for (const [name] of taken.jobs) this.#jobs.add(name);
    this.#notifications.unshift(...taken.notifications);
    this.#damage.unshift(...taken.damage);
    this.#audit.unshift(...taken.audit);
  }
}
