import { HostError } from '../contract/errors.js';

/** The longest wait between retries of a failed commit. */
export const MAX_BACKOFF = 5000;

export interface GroupCommitHooks {
  /** A commit succeeded. */
  committed(): void;
  /** A commit failed; returns what its waiters are rejected with. `backoffMs` is the wait before the retry. */
  failed(err: unknown, backoffMs: number): unknown;
}

/**
 * Group commit: every save made before the next commit starts shares one promise, and one
 * commit writes them all. A failed commit rejects its waiters and is retried with backoff (the
 * caller keeps what it could not write), so a full disk is neither lost data nor a busy loop.
 */
export class GroupCommit {
  readonly #commit: () => Promise<void>;
  readonly #hooks: GroupCommitHooks;
  #batch: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;
  #committing = false;
  #scheduled = false;
  #closed = false;
  #backoff = 50;

  constructor(commit: () => Promise<void>, hooks: GroupCommitHooks) {
    this.#commit = commit;
    this.#hooks = hooks;
  }

  get committing(): boolean {
    return this.#committing;
  }

  /** The promise of the next commit, which every save made before it starts shares. */
  request(): Promise<void> {
    if (this.#closed) {
      // Like a failed batch: the caller that awaits it hears SHUTTING_DOWN; a `void` save must not crash the process.
      const refused = Promise.reject(new HostError('SHUTTING_DOWN', 'the store is closed'));
      refused.catch(() => undefined);
      return refused;
    }
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
    try {
      while (this.#batch) {
        const batch = this.#batch;
        this.#batch = undefined;
        try {
          await this.#commit();
          batch.resolve();
          this.#backoff = 50;
          this.#hooks.committed();
          // What the waiters do next (a run dispatched and started, an HTTP answer's audit record)
          // joins the next commit rather than the one after it: one disk trip less per request.
          if (this.#batch) await new Promise((r) => setImmediate(r));
        } catch (err) {
          batch.reject(this.#hooks.failed(err, this.#backoff));
          if (this.#closed) break;
          // The dirty set was kept: retry it, backing off so a full disk is not a busy loop.
          void this.request();
          await new Promise((r) => setTimeout(r, this.#backoff));
          this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF);
        }
      }
    } finally {
      this.#committing = false;
    }
  }
}
