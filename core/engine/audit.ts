import type { AuditQuery, AuditRecord } from '../contract/audit.js';
import type { Backend } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import type { Page } from '../contract/run.js';

/** What the API tells the audit of one request (the host adds id, time and itself). */
export type AuditEntry = Omit<AuditRecord, 'id' | 'at' | 'host'>;

export interface AuditOptions {
  backend(): Backend;
  clock: Clock;
  newId(): string;
  hostId: string;
}

/**
 * The host's side of the audit trail (SPEC §14): stamps each entry with an id that sorts by time
 * (unique across the hosts of a cluster, like run ids) and hands it to the backend, which keeps it
 * as durably as runs.
 */
export class Audit {
  readonly #o: AuditOptions;

  constructor(options: AuditOptions) {
    this.#o = options;
  }

  /** Records an entry; resolves with the record once it is durable. `id`: the one stamped ahead (`stamp`), whose record this replaces. */
  async record(entry: AuditEntry, id?: string): Promise<AuditRecord> {
    const record = this.stamp(entry, id);
    await this.#o.backend().audit.append(record);
    return record;
  }

  /** The record of an entry, not yet kept: for a change that carries it into its own write (a trigger's `audit`). */
  stamp(entry: AuditEntry, id = this.#o.newId()): AuditRecord {
    // Field by field, not a spread: a spread in a literal copies through V8's slow generic path (one per trigger).
    const { token, action, target, ip, outcome, status, code } = entry;
    return { id, at: isoTime(this.#o.clock.now()), token, action, target, ip, outcome, status, code, host: this.#o.hostId };
  }

  /** Newest first, filtered; `next` is the cursor for `before`. */
  list(query: AuditQuery = {}): Promise<Page<AuditRecord>> {
    return this.#o.backend().audit.list(query);
  }
}
