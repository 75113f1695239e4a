import { type AuditQuery, type AuditRecord, type AuditStore, auditCutoff, auditLimit, auditMatches } from '../contract/audit.js';
import type { Clock } from '../contract/clock.js';
import type { Page } from '../contract/run.js';

export interface AuditLogOptions {
  keepRuns: number;
  keepDays: number;
  clock: Clock;
}

/**
 * The local audit trail: records in memory in id order (oldest first), written through the store's journal
 * (a `{"a":…}` line, group-committed with the runs of the same tick) and kept in each checkpoint,
 * so an answered request's record survives a kill -9 like its run does. Retention is the runs':
 * the newest `keepRuns` records, none older than `keepDays`.
 */
export class AuditLog implements AuditStore {
  readonly #o: AuditLogOptions;
  /** Where the store's next commit finds what it journals. */
  readonly #pending: { audit(record: AuditRecord): void };
  /** The store's group commit: resolves once what is pending is durable. */
  readonly #commit: () => Promise<void>;
  /** Sorted by id, one record per id: `list` walks it back from the newest and `before` cuts by id. */
  #items: AuditRecord[] = [];

  constructor(options: AuditLogOptions, pending: { audit(record: AuditRecord): void }, commit: () => Promise<void>) {
    this.#o = options;
    this.#pending = pending;
    this.#commit = commit;
  }

  /** Loads a checkpoint's records, then the journal's (`apply`). */
  restore(items: readonly AuditRecord[]): void {
    this.#items = [];
    for (const r of items) this.apply(r);
  }

  /**
   * A record read back from a journal, or appended, put at its id's place. One of an id already
   * kept replaces it: a request's refusal replaces the `ok` record its failed trigger carried (the
   * last line wins). A record comes after one of a greater id when it was stamped as its request
   * began (a trigger's, `auditAhead`) and kept once its run was written, with changes recorded in
   * between; the journal keeps them in that order, so a replay sorts them the same way here.
   */
  apply(record: AuditRecord): void {
    const items = this.#items;
    const id = record.id;
    // The newest, as nearly every record is: no search.
    if (items.length === 0 || items[items.length - 1]!.id < id) {
      items.push(record);
      return;
    }
    // A late one, or a replacement: a binary search, so that even ids from a clock set back across
    // a restart (below every kept one until it catches up) cost a log, not a walk of the trail.
    let lo = 0;
    let hi = items.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (items[mid]!.id < id) lo = mid + 1;
      else hi = mid;
    }
    if (items[lo]!.id === id) items[lo] = record;
    else items.splice(lo, 0, record);
  }

  append(record: AuditRecord): Promise<void> {
    this.apply(record);
    // Trimmed in bulk, so an append stays O(1).
    if (this.#items.length > this.#o.keepRuns * 2) this.#items = this.kept();
    this.#pending.audit(record);
    return this.#commit();
  }

  /** What retention keeps (for a checkpoint). */
  kept(): AuditRecord[] {
    const cutoff = auditCutoff(this.#o.clock.now(), this.#o.keepDays);
    return this.#items.slice(-this.#o.keepRuns).filter((r) => r.id >= cutoff);
  }

  list(query: AuditQuery): Promise<Page<AuditRecord>> {
    const limit = auditLimit(query);
    const cutoff = auditCutoff(this.#o.clock.now(), this.#o.keepDays);
    const items: AuditRecord[] = [];
    let more = false;
    for (let i = this.#items.length - 1; i >= Math.max(0, this.#items.length - this.#o.keepRuns); i--) {
      const r = this.#items[i]!;
      if (r.id < cutoff) break;
      if ((query.before !== undefined && r.id >= query.before) || !auditMatches(r, query)) continue;
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push({ ...r });
    }
    const page: Page<AuditRecord> = { items };
    if (more) page.next = items.at(-1)!.id;
    return Promise.resolve(page);
  }
}
