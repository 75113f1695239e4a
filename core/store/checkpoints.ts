import path from 'node:path';
import type { Low } from 'lowdb';
import type { Clock } from '../contract/clock.js';
import { AppendFile } from './files.js';
import type { DamageFound } from './store-damage.js';
import { newestJournal, readCheckpoint, removeJournalsBefore, type StateDoc } from './store-files.js';
import { stampStoreFormat } from './store-format.js';

/** What a checkpoint holds besides its own number. */
export type CheckpointContent = Omit<StateDoc, 'version' | 'checkpoint'>;

/**
 * state.json and the journals beside it: checkpoint n covers everything saved before journal n
 * was opened. Writing one switches to a new journal first, then writes state.json, then drops
 * the journals it covers.
 */
export class Checkpoints {
  readonly #dir: string;
  readonly #fsync: boolean;
  #db: Low<StateDoc> | undefined;
  #n = 0;
  #journal: AppendFile | undefined;
  /** The number of the journal being appended to; ahead of #n after a failed checkpoint. */
  #journalN = 0;
  /** Journals switched away from, removed once a checkpoint that covers them is durable. */
  readonly #retired: AppendFile[] = [];

  constructor(dir: string, fsync: boolean) {
    this.#dir = dir;
    this.#fsync = fsync;
  }

  /** Reads state.json (or starts an empty one); `lost`: it was unreadable, and is set aside. */
  async read(clock: Clock): Promise<{ doc: StateDoc; lost: DamageFound | undefined }> {
    const { db, lost } = await readCheckpoint(this.#dir, this.#fsync, clock);
    await stampStoreFormat(this.#dir, this.#fsync);
    this.#db = db;
    // Without a checkpoint (none yet, or an unreadable one set aside) every journal is read; the
    // next one must come after them all, so that it covers them and they are removed, never
    // appended to again.
    this.#n = db.data.checkpoint === 0 ? await newestJournal(this.#dir) : db.data.checkpoint;
    this.#journalN = this.#n;
    return { doc: db.data, lost };
  }

  /** The journal being appended to (none before the first checkpoint after a start). */
  get journal(): AppendFile | undefined {
    return this.#journal;
  }

  /**
   * Switches to a new journal, then writes `content()` as the next checkpoint; `content` is called
   * after the switch, so records saved from then on belong to the new journal.
   */
  async write(content: () => CheckpointContent): Promise<void> {
    if (!this.#db) return;
    const n = this.#n + 1;
    // After a failed checkpoint the switch is already done: journal n is kept, not opened twice.
    if (this.#journalN !== n || !this.#journal) {
      const next = new AppendFile(path.join(this.#dir, `journal-${n}.ndjson`), { fsync: this.#fsync });
      await next.open();
      if (this.#journal) this.#retired.push(this.#journal);
      this.#journal = next;
      this.#journalN = n;
    }
    this.#db.data = { version: 1, checkpoint: n, ...content() };
    try {
      await this.#db.write();
    } finally {
      this.#db.data.live = []; // do not pin the snapshot's array
    }
    this.#n = n;
    for (const old of this.#retired.splice(0)) await old.remove();
  }

  /** Drops journals older than the checkpoint: a crash between its write and their removal leaves them. */
  removeCovered(): Promise<void> {
    return removeJournalsBefore(this.#dir, this.#n);
  }

  async close(): Promise<void> {
    for (const old of this.#retired.splice(0)) await old.close();
    await this.#journal?.close();
  }
}
