import { HostError, isHostError } from '../contract/errors.js';
import { displayPath } from './files.js';

/**
 * Why a store directory did not open at start, as an error with a stable code and the path it is
 * about (relative to the working directory, as `STORE_LOCKED` names the directory). The file
 * system's own errors name no file for some calls (a read of a directory) and an absolute path
 * for the rest; `jobhost start` prints this message as it is.
 */

/** Errors of a file system that takes no writes: the same condition as a commit that cannot write. */
const CANNOT_WRITE: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
};

/** What the store found instead of what it keeps there, or why it may not use it. */
const CANNOT_OPEN: Readonly<Record<string, string>> = {
  EISDIR: 'is a directory, where the store keeps a file',
  ENOTDIR: 'is not a directory, or a part of its path is a file where the store keeps a directory',
  // mkdir of a path that is there as a file (store.dir, segments/).
  EEXIST: 'is a file, where the store keeps a directory',
  EACCES: 'may not be used: permission denied',
  EPERM: 'may not be used: operation not permitted',
  ELOOP: 'is a loop of symbolic links',
  ENAMETOOLONG: 'is a path too long for the file system',
};

/**
 * The error a store's open failed with, made one with a code: `STORE_WRITE_FAILED` where the file
 * system refuses writes (a full disk, a read-only mount), `STORE_OPEN_FAILED` for a path that is
 * not what the store keeps there or may not be used. `STORE_LOCKED`, `STORE_VERSION_UNSUPPORTED`
 * and errors that are not the file system's pass as they are. `dir` is named when the error
 * names no path.
 */
export function storeOpenError(err: unknown, dir: string): unknown {
  let cause: unknown = err;
  let file: unknown;
  if (isHostError(err)) {
    // A commit at open (an append to the journal or a segment): its errno, not its absolute path.
    if (err.code !== 'STORE_WRITE_FAILED' || !isErrno(err.cause)) return err;
    cause = err.cause;
    file = err.details?.['file'];
  }
  if (!isErrno(cause)) return err;
  const errno = cause.code;
  const where = displayPath(cause.path ?? (typeof file === 'string' ? file : dir));
  const details = { errno, file: where, syscall: cause.syscall ?? null };
  const full = CANNOT_WRITE[errno];
  if (full !== undefined) {
    return new HostError('STORE_WRITE_FAILED', `the store cannot write ${where} (${errno}: ${full})`, details, { cause });
  }
  const found = CANNOT_OPEN[errno] ?? 'was refused by the file system';
  const how = cause.syscall ? `${errno}, ${cause.syscall}` : errno;
  return new HostError('STORE_OPEN_FAILED', `the store cannot open ${where}: it ${found} (${how})`, details, { cause });
}

function isErrno(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((err as NodeJS.ErrnoException).code!);
}
