import path from 'node:path';
import { z } from 'zod';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { type PausedSet, type PauseKind, PauseSets, type PauseStore } from '../contract/pause.js';
import { readStoreFile, writeFileDurable } from './files.js';

/**
 * The local backend's pauses (SPEC §13): two small sets, kept in `pauses.json` in the store
 * directory and rewritten whole on each change (temp → fsync → rename → fsync(dir), like a
 * checkpoint). Pauses change a few times a day at most: a file of their own keeps the journal's
 * format as it is. A held run is parked by the dispatcher (`runner.ts`), so it is recorded and
 * counted as waiting like any other; a resume gives every parked run its chance again.
 */

export const PAUSES_FILE = 'pauses.json';

const pausesDoc = z.object({ version: z.literal(1), jobs: z.array(z.string()), queues: z.array(z.string()) });

export interface LocalPausesOptions {
  /** The store directory; null keeps pauses in memory. */
  dir: string | null;
  fsync: boolean;
  logger: Logger;
  /** Something was resumed: parked runs may start now. */
  resumed(): void;
}

export class LocalPauses implements PauseStore {
  readonly #o: LocalPausesOptions;
  readonly #sets = new PauseSets();
  /** Writes in order, so the file ends as the last change left the sets. */
  #writing: Promise<void> = Promise.resolve();

  constructor(options: LocalPausesOptions) {
    this.#o = options;
  }

  /** Reads the file (at open, once the store holds its directory); changes made before are kept on top. */
  async load(): Promise<void> {
    if (this.#o.dir === null) return;
    let text: string;
    try {
      text = (await readStoreFile(path.join(this.#o.dir, PAUSES_FILE))).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    const parsed = pausesDoc.safeParse(json);
    if (!parsed.success) {
      // Written atomically by us only: a bad file was edited from outside. Nothing is held rather than the host not starting.
      this.#o.logger.error({ file: PAUSES_FILE }, 'the pauses file is not valid: no job or queue is paused');
      return;
    }
    for (const n of parsed.data.jobs) this.#sets.jobs.add(n);
    for (const n of parsed.data.queues) this.#sets.queues.add(n);
  }

  holds(job: string, queue: string): boolean {
    return this.#sets.holds(job, queue);
  }

  isPaused(kind: PauseKind, name: string): boolean {
    return this.#sets.isPaused(kind, name);
  }

  list(): PausedSet {
    return this.#sets.list();
  }

  async set(kind: PauseKind, name: string, paused: boolean): Promise<boolean> {
    const set = this.#sets.of(kind);
    if (set.has(name) === paused) {
      // Unchanged, but answered only once what an earlier call wrote is durable.
      await this.#writing;
      return false;
    }
    if (paused) set.add(name);
    else set.delete(name);
    const dir = this.#o.dir;
    if (dir !== null) {
      const text = `${JSON.stringify({ version: 1, ...this.#sets.list() })}\n`;
      this.#writing = this.#writing.catch(() => undefined).then(() => writeFileDurable(path.join(dir, PAUSES_FILE), text, this.#o.fsync));
      try {
        await this.#writing;
      } catch (err) {
        // Not durable: undone, so what the API answers and what a restart finds agree.
        if (paused) set.delete(name);
        else set.add(name);
        throw new HostError('STORE_WRITE_FAILED', `${PAUSES_FILE}: ${(err as Error).message}`, { file: PAUSES_FILE }, { cause: err });
      }
    }
    if (!paused) this.#o.resumed();
    return true;
  }

  /** One host: nobody else changes them. */
  changed(): void {}
}
