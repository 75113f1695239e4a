import path from 'node:path';
import type { Low } from 'lowdb';
import type { Clock } from '../contract/clock.js';
import { isFinal, type Run } from '../contract/run.js';
import { AppendFile, writePartsDurable } from './files.js';
import { holdJournal } from './lock.js';
import { serializeRun } from './serialize.js';
import type { DamageFound } from './store-damage.js';
import { newestJournal, readCheckpoint, removeJournalsBefore, type StateDoc } from './store-files.js';
import { stampStoreFormat } from './store-format.js';

/** What a checkpoint holds besides its own number and its runs. */
export type CheckpointContent = Omit<StateDoc, 'version' | 'checkpoint' | 'live'>;

/** Runs serialized per slice of a checkpoint: well under a millisecond of work between turns of the event loop. */
const SLICE = 250;

/**
 * The runs a checkpoint keeps, taken when it starts, and what it holds besides, taken when it
 * ends. `finish` gets the ids of the runs written final; it answers the rest of the document
 * and the runs to write again (those that finished while the slices were written), whose
 * records come last and so win at load.
 */
export interface CheckpointSource {
  runs(): readonly Run[];
  finish(writtenFinal: ReadonlySet<string>): { content: CheckpointContent; again: readonly Run[] };
}

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
   * Switches to a new journal, then writes the next checkpoint from `source`, read after the
   * switch, so records saved from then on belong to the new journal. The runs are serialized a
   * slice at a time, between turns of the event loop (the caller lets no commit happen meanwhile,
   * so a run's record only moves forward), and the rest of the document is taken at the end.
   */
  async write(source: CheckpointSource): Promise<void> {
    if (!this.#db) return;
    const n = this.#n + 1;
    // After a failed checkpoint the switch is already done: journal n is kept, not opened twice.
    if (this.#journalN !== n || !this.#journal) {
      const next = new AppendFile(path.join(this.#dir, `journal-${n}.ndjson`), { fsync: this.#fsync });
      await next.open();
      // Held while this host appends to it: a process that took a removed jobhost.lock finds it held (lock.ts).
      await holdJournal(next.fd).catch(async (err: unknown) => {
        await next.close();
        throw err;
      });
      if (this.#journal) this.#retired.push(this.#journal);
      this.#journal = next;
      this.#journalN = n;
    }
    this.#db.data.live = []; // the runs read at load are the store's now: do not pin them
    await writePartsDurable(path.join(this.#dir, 'state.json'), checkpointText(n, source), this.#fsync);
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

/** The checkpoint document in parts: its runs a slice at a time, then the rest (see `CheckpointSource`). */
async function* checkpointText(n: number, source: CheckpointSource): AsyncGenerator<string> {
  const runs = source.runs();
  const writtenFinal = new Set<string>();
  let part = `{"version":1,"checkpoint":${n},"live":[`;
  for (let i = 0; i < runs.length; i += SLICE) {
    const end = Math.min(runs.length, i + SLICE);
    for (let k = i; k < end; k++) {
      const run = runs[k]!;
      if (isFinal(run.status)) writtenFinal.add(run.id);
      part += (k > 0 ? ',' : '') + serializeRun(run);
    }
    yield part;
    part = '';
  }
  const { content, again } = source.finish(writtenFinal);
  for (const [k, run] of again.entries()) part += (k > 0 || runs.length > 0 ? ',' : '') + serializeRun(run);
  const rest = JSON.stringify(content);
  yield `${part}]${rest.length > 2 ? `,${rest.slice(1)}` : '}'}`;
}
