import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';

/**
 * Group commit: every save made before the next commit starts shares one promise, and one
 * commit writes them all. A failed commit rejects its waiters and is retried with backoff (the
 * caller keeps what it could not write), so a full disk is neither lost data nor a busy loop.
 */
export class GroupCommit {
  readonly #commit: () => Promise<void>;
  readonly #logger: Logger;
  #batch: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;
  #committing = false;
  #scheduled = false;
  #closed = false;

  constructor(commit: () => Promise<void>, logger: Logger) {
    this.#commit = commit;
    this.#logger = logger;
  }

  get committing(): boolean {
    return this.#committing;
  }

  /** The promise of the next commit, which every save made before it starts shares. */
  request(): Promise<void> {
    if (this.#closed) return Promise.reject(new HostError('SHUTTING_DOWN', 'the store is closed'));
    if (!this.#batch) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A failed batch is reported to each waiter; an unobserved one must not crash the process.
      promise.catch(() => undefined);
      this.#batch = { promise, resolve, reject };
    }
    if (!this.#committing && !this.#scheduled) {
      this.#scheduled = true;
      // setImmediate, not a microtask: every trigger of this tick (and its I/O phase) joins the batch.
      setImmediate(() => void this.#loop());
    }
    return this.#batch.promise;
  }

  /** Resolves when everything requested so far is committed. */
  flush(): Promise<void> {
    if (!this.#batch && !this.#committing) return Promise.resolve();
    if (this.#batch) return this.#batch.promise;
    // A commit is in flight with nothing after it: wait for it with an empty batch.
    return this.request();
  }

  /** Refuses new requests; a commit in flight finishes (see `committing`). */
  close(): void {
    this.#closed = true;
  }

  async #loop(): Promise<void> {
    this.#scheduled = false;
    if (this.#committing) return;
    this.#committing = true;
    let backoff = 50;
    try {
      while (this.#batch) {
        const batch = this.#batch;
        this.#batch = undefined;
        try {
          await this.#commit();
          batch.resolve();
          backoff = 50;
        } catch (err) {
          this.#logger.error({ err, code: 'STORE_WRITE_FAILED' }, 'store commit failed; its saves are not acknowledged and are retried');
          batch.reject(err);
          if (this.#closed) break;
          // The dirty set was kept: retry it, backing off so a full disk is not a busy loop.
          void this.request();
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    } finally {
      this.#committing = false;
    }
  }
}
