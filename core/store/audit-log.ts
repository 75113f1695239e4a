import { type AuditQuery, type AuditRecord, type AuditStore, auditCutoff, auditLimit, auditMatches } from '../contract/audit.js';
import type { Clock } from '../contract/clock.js';
import type { Page } from '../contract/run.js';

export interface AuditLogOptions {
  keepRuns: number;
  keepDays: number;
  clock: Clock;
}

/**
 * The local audit trail: records in memory, oldest first, written through the store's journal
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
  #items: AuditRecord[] = [];
  /** No kept id is greater: ids sort by time, so a new record's is, and it needs no lookup. */
  #maxId = '';
  /**
   * The kept ids, built only once a record comes whose id is not past `#maxId` (a replacement, or
   * an id from another clock); dropped at the next trim. A Set add per record cost ~1 µs per HTTP
   * trigger on a loaded machine (hashing a fresh string into a table of 10,000-20,000).
   */
  #ids: Set<string> | undefined;

  constructor(options: AuditLogOptions, pending: { audit(record: AuditRecord): void }, commit: () => Promise<void>) {
    this.#o = options;
    this.#pending = pending;
    this.#commit = commit;
  }

  /** Loads a checkpoint's records, then the journal's (`apply`). */
  restore(items: readonly AuditRecord[]): void {
    this.#items = [];
    this.#maxId = '';
    this.#ids = undefined;
    for (const r of items) this.apply(r);
  }

  /**
   * A record read back from a journal, or appended. One of an id already kept replaces it: a
   * request's refusal replaces the `ok` record its failed trigger carried (the last line wins).
   */
  apply(record: AuditRecord): void {
    const id = record.id;
    if (id > this.#maxId) {
      // Past every kept id: not one of them.
      this.#maxId = id;
      this.#items.push(record);
      this.#ids?.add(id);
      return;
    }
    this.#ids ??= new Set(this.#items.map((r) => r.id));
    if (this.#ids.has(id)) {
      const i = this.#items.findLastIndex((r) => r.id === id);
      if (i >= 0) this.#items[i] = record;
      return;
    }
    this.#items.push(record);
    this.#ids.add(id);
  }

  append(record: AuditRecord): Promise<void> {
    this.apply(record);
    // Trimmed in bulk, so an append stays O(1).
    if (this.#items.length > this.#o.keepRuns * 2) {
      this.#items = this.kept();
      this.#ids = undefined;
    }
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
