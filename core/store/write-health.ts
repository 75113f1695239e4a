import { type Clock, isoTime } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import { type StoreWriteError, storeUnavailable } from '../contract/store-health.js';
import type { GroupCommitHooks } from './group-commit.js';

/** The errno code behind a failed write (`ENOSPC`), however deep the store wrapped it. */
function errnoOf(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'STORE_WRITE_FAILED';
}

/** The system's message for a failed write, without the file's path. */
function messageOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  const message = e instanceof Error ? e.message : String(e);
  // "ENOSPC: no space left on device, write" — the path, when there is one, follows a comma.
  return message.replace(/, (open|write|fsync|fdatasync|rename|mkdir|copyfile|ftruncate|close) .*$/, ', $1');
}

/**
 * Whether the store can write: set by a failed commit (a full disk), cleared by the next that
 * succeeds. While it is set the engine refuses new work with 503 and a time to retry.
 */
export class WriteHealth implements GroupCommitHooks {
  readonly #clock: Clock;
  readonly #logger: Logger;
  #error: StoreWriteError | null = null;

  constructor(clock: Clock, logger: Logger) {
    this.#clock = clock;
    this.#logger = logger;
  }

  get error(): StoreWriteError | null {
    return this.#error;
  }

  committed(): void {
    if (this.#error) {
      this.#logger.info({ failingSince: this.#error.since }, 'the store can write again');
      this.#error = null;
    }
  }

  /** A commit failed: note why and return what its waiters are told (no path in it, a time to retry). */
  failed(err: unknown, backoffMs: number): unknown {
    const retryAfter = Math.max(1, Math.ceil(backoffMs / 1000));
    const code = errnoOf(err);
    if (this.#error === null) {
      this.#error = { code, message: messageOf(err), since: isoTime(this.#clock.now()), retryAfter };
      this.#logger.error(
        { err, code: 'STORE_WRITE_FAILED' },
        'store commit failed; its saves are not acknowledged and are retried; new work is refused until a commit succeeds',
      );
    } else {
      this.#error = { ...this.#error, code, message: messageOf(err), retryAfter };
      this.#logger.debug({ err, code: 'STORE_WRITE_FAILED' }, 'store commit failed again');
    }
    return storeUnavailable(this.#error, err);
  }
}
