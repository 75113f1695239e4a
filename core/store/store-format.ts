import path from 'node:path';
import type { Clock } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { readStoreFile, writeFileDurable } from './files.js';
import { lockStore, type StoreLock } from './lock.js';

/**
 * The store's on-disk format version. A store written by this version opens in every later one
 * (a later version reads format 1 as it is, or upgrades it); a store of a newer format than this
 * version knows is refused untouched with STORE_VERSION_UNSUPPORTED, rather than read wrongly or
 * "repaired" (an unknown state.json would otherwise look damaged and be set aside).
 *
 * The version is in `format` (a small JSON file beside state.json, written at open), read before
 * the store takes its lock or writes anything; state.json's `version` says the same and is checked
 * too. A store with neither was written before versions were stamped: format 1.
 */

/** The newest store format this version reads and the one it writes. */
export const STORE_FORMAT = 1;

/** `<dir>/format`: `{"format":N}`. */
export const FORMAT_FILE = 'format';

/**
 * The store format of `dir`: what its `format` file says; without one, state.json's `version` (read
 * only then, once: the stamp follows); 1 for a store, or a directory, with neither.
 */
export async function readStoreFormat(dir: string): Promise<number> {
  const stamped = await readVersion(path.join(dir, FORMAT_FILE), 'format');
  return Math.max(1, stamped > 0 ? stamped : await readVersion(path.join(dir, 'state.json'), 'version'));
}

/**
 * Throws STORE_VERSION_UNSUPPORTED when `dir` holds a store of a newer format than this version
 * reads. Only reads: called before the store takes its lock or writes anything.
 */
export async function checkStoreFormat(dir: string): Promise<void> {
  refuseNewer(dir, await readStoreFormat(dir));
}

/**
 * Takes the store's lock (lock.ts) once `dir` is known to hold no store of a newer format: checked
 * before (so a refused store is left byte for byte as it was, its lock file too) and again after
 * (a newer host may have stamped it in between).
 */
export async function lockSupported(dir: string, options: { clock: Clock; logger: Logger }): Promise<StoreLock> {
  await checkStoreFormat(dir);
  const lock = await lockStore(dir, options);
  try {
    await checkStoreFormat(dir);
  } catch (err) {
    await lock.release();
    throw err;
  }
  return lock;
}

/** Throws STORE_VERSION_UNSUPPORTED when `found` is newer than STORE_FORMAT. */
export function refuseNewer(dir: string, found: number): void {
  if (found <= STORE_FORMAT) return;
  throw new HostError(
    'STORE_VERSION_UNSUPPORTED',
    `the store in ${dir} has format ${found}, written by a newer jobhost; this version reads format ${STORE_FORMAT} at most and left it untouched: run a newer jobhost, or point store.dir elsewhere`,
    { dir, format: found, supported: STORE_FORMAT },
  );
}

/** Stamps `dir` with this version's format (once: an existing stamp of this format is left as it is). */
export async function stampStoreFormat(dir: string, fsync: boolean): Promise<void> {
  const file = path.join(dir, FORMAT_FILE);
  if ((await readVersion(file, 'format')) === STORE_FORMAT) return;
  await writeFileDurable(file, `${JSON.stringify({ format: STORE_FORMAT })}\n`, fsync);
}

/** A positive integer field of a JSON file; 0 when the file is missing, is not JSON, or has no such field. */
async function readVersion(file: string, field: string): Promise<number> {
  let text: string;
  try {
    text = (await readStoreFile(file)).toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return 0;
    throw err;
  }
  try {
    const value = (JSON.parse(text) as Record<string, unknown> | null)?.[field];
    return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : 0;
  } catch {
    return 0;
  }
}
