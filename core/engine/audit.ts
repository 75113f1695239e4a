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

  /** Records an entry; resolves with the record once it is durable. */
  async record(entry: AuditEntry): Promise<AuditRecord> {
    const record: AuditRecord = { id: this.#o.newId(), at: isoTime(this.#o.clock.now()), ...entry, host: this.#o.hostId };
    await this.#o.backend().audit.append(record);
    return record;
  }

  /** Newest first, filtered; `next` is the cursor for `before`. */
  list(query: AuditQuery = {}): Promise<Page<AuditRecord>> {
    return this.#o.backend().audit.list(query);
  }
}
