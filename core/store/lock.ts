import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { type Clock, isoTime } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { displayPath, withPath } from './files.js';

/**
 * One writer per store directory (SPEC §3): `jobhost.lock` in the directory, held with a kernel
 * lock on an open file description (Linux `F_OFD_SETLK`, flock on macOS, LockFileEx on Windows,
 * through fs-native-extensions). The kernel drops it when the holder's process ends, however it
 * ends (kill -9 too), so a crash never leaves a stale lock; taking it is one atomic call, so two
 * processes starting at once cannot both win; and nothing refreshes it, so a blocked event loop
 * cannot let another process take it away. Two stores in one process conflict too (the lock
 * belongs to the open file, not to the process).
 *
 * The file's text only names the holder (pid, host, start time) for the refusal message; the
 * kernel lock alone decides. The file is never deleted: removing it while a process waits on the
 * old inode would let two processes each lock a different file.
 *
 * A user may delete it all the same ("a stale lock"): a second process then locks a new file and
 * would load the store, checkpoint it and delete the journal the first still appends to, losing
 * what it acknowledged after. So the holder also locks each journal it appends to (`holdJournal`),
 * and a process that took the lock file checks the journals before it touches anything.
 */

export const LOCK_FILE = 'jobhost.lock';

/** Who holds a store's lock, as the holder wrote it. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
}

/** A held lock; `release()` lets the next process take the directory. */
export interface StoreLock {
  release(): Promise<void>;
}

interface NativeLocks {
  tryLock(fd: number): boolean;
  unlock(fd: number): void;
}

let native: Promise<NativeLocks | Error> | undefined;

/** The lock addon, loaded once; an Error where it has no build for this platform (musl, an unusual CPU). */
function nativeLocks(): Promise<NativeLocks | Error> {
  native ??= import(
    // @ts-expect-error: the package ships no types; what it exports is checked below
    'fs-native-extensions'
  ).then(
    (mod: Partial<Record<keyof NativeLocks, unknown>>): NativeLocks | Error => {
      const { tryLock, unlock } = mod;
      if (typeof tryLock !== 'function' || typeof unlock !== 'function') return new Error('fs-native-extensions has no tryLock/unlock');
      return { tryLock: (fd) => tryLock(fd) === true, unlock: (fd) => void unlock(fd) };
    },
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  return native;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder> | null;
    if (v && typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.startedAt === 'string') {
      return { pid: v.pid, host: v.host, startedAt: v.startedAt };
    }
  } catch {
    // empty or partly written: the holder is between taking the lock and saying who it is
  }
  return undefined;
}

/** Who holds the lock of `file`; the holder writes its name just after locking, so a short wait covers that gap. */
async function readHolder(file: string): Promise<LockHolder | undefined> {
  for (let i = 0; i < 10; i++) {
    const holder = parseHolder(await readFile(file, 'utf8').catch(() => ''));
    if (holder) return holder;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

/**
 * Takes the lock of store directory `dir` (created if missing), or throws `STORE_LOCKED` naming
 * the holder. Where the platform has no lock addon, logs a warning and returns a lock that holds
 * nothing, so the host still starts.
 */
export async function lockStore(dir: string, options: { clock: Clock; logger: Logger }): Promise<StoreLock> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  const locks = await nativeLocks();
  if (locks instanceof Error) {
    options.logger.warn(
      { err: locks, dir },
      `cannot lock the store directory ${JSON.stringify(displayPath(dir))} on this platform: nothing stops a second host from writing to it`,
    );
    return { release: async () => undefined };
  }
  // Never O_TRUNC: the holder's name stays readable until the lock is ours.
  const handle: FileHandle = await open(file, constants.O_RDWR | constants.O_CREAT, 0o644);
  let locked: boolean;
  try {
    locked = locks.tryLock(handle.fd);
  } catch (err) {
    await handle.close();
    throw err;
  }
  if (!locked) {
    await handle.close();
    const holder = await readHolder(file);
    const who = holder ? `pid ${holder.pid} on host ${holder.host} (since ${holder.startedAt})` : 'another process (it has not written its name yet)';
    throw new HostError('STORE_LOCKED', `the store directory ${JSON.stringify(displayPath(dir))} is in use by ${who}; one host owns a store directory`, {
      dir,
      ...holder,
    });
  }
  const writer = await journalWriter(dir, locks).catch(async (err: unknown) => {
    locks.unlock(handle.fd);
    await handle.close();
    throw err;
  });
  if (writer !== undefined) {
    locks.unlock(handle.fd);
    await handle.close();
    throw new HostError(
      'STORE_LOCKED',
      `the store directory ${JSON.stringify(displayPath(dir))} is in use by another process, which still writes to ${writer} (its ${LOCK_FILE} was removed); one host owns a store directory`,
      { dir },
    );
  }
  const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: isoTime(options.clock.now()) };
  try {
    await handle.truncate(0);
    await handle.write(`${JSON.stringify(me)}\n`, 0);
  } catch (err) {
    locks.unlock(handle.fd);
    await handle.close();
    throw withPath(err, file);
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      // Emptied, so a name left behind never points at a process that has let go.
      await handle.truncate(0).catch(() => undefined);
      locks.unlock(handle.fd);
      await handle.close();
    },
  };
}

/** Journals are locked where a kernel lock is advisory: on Windows LockFileEx would bar other handles from reading them. */
const JOURNAL_LOCKS = process.platform !== 'win32';

const JOURNAL_FILE = /^journal-\d+\.ndjson$/;

/** The journal of `dir` another process holds (see the top of this file), if any. */
async function journalWriter(dir: string, locks: NativeLocks): Promise<string | undefined> {
  if (!JOURNAL_LOCKS) return undefined;
  const checked = new Set<string>();
  // Until a listing shows no journal not checked yet: the owner may switch to a new journal (and
  // delete the one checked) while this looks.
  for (;;) {
    const fresh = (await readdir(dir)).filter((n) => JOURNAL_FILE.test(n) && !checked.has(n));
    if (fresh.length === 0) return undefined;
    for (const name of fresh) {
      checked.add(name);
      let handle: FileHandle;
      try {
        handle = await open(path.join(dir, name), constants.O_RDWR);
      } catch {
        continue; // removed meanwhile, or not ours to open: the load says what it finds
      }
      try {
        if (!locks.tryLock(handle.fd)) return name;
        locks.unlock(handle.fd);
      } finally {
        await handle.close();
      }
    }
  }
}

/**
 * Locks the journal open at `fd`, which this host appends to (see the top of this file), until its
 * descriptor is closed. Nothing where the platform has no lock addon.
 */
export async function holdJournal(fd: number | undefined): Promise<void> {
  const locks = await nativeLocks();
  if (fd === undefined || !JOURNAL_LOCKS || locks instanceof Error) return;
  if (!locks.tryLock(fd)) throw new HostError('STORE_LOCKED', 'another process holds the journal this host just created', {});
}
