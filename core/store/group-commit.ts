import { HostError } from '../contract/errors.js';

/** The longest wait between retries of a failed commit. */
export const MAX_BACKOFF = 5000;

/**
 * Saves per slice of a batch's waiters. A commit's waiters are answered a slice per turn of the
 * event loop, and the next commit starts between slices: what the first slice's waiters do next
 * (their runs' next triggers, started and ended) is written while the later slices run. 256 saves
 * are ~85 runs of three saves each (~1 ms of CPU): fine enough for the disk to idle less than
 * that between commits, and more than an HTTP benchmark's 50 connections save in one commit, so a
 * small batch is answered at once, as before.
 */
export const SLICE = 256;

export interface GroupCommitHooks {
  /** A commit succeeded. */
  committed(): void;
  /** A commit failed; returns what its waiters are rejected with. `backoffMs` is the wait before the retry. */
  failed(err: unknown, backoffMs: number): unknown;
}

interface Slice {
  /** Saves it answers. */
  saves: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** The saves the next commit writes, their waiters in slices of `SLICE` saves. */
interface Batch {
  slices: Slice[];
  saves: number;
}

function slice(): Slice {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A failed batch is reported to each waiter; an unobserved one must not crash the process.
  promise.catch(() => undefined);
  return { saves: 0, promise, resolve, reject };
}

/**
 * Group commit: every save made before the next commit starts shares its promises, and one
 * commit writes them all. One commit is on the disk at a time, so commits reach the files in
 * the order they started and a waiter never hears of a commit before every earlier one is
 * durable too. A failed commit rejects its waiters and is retried with backoff (the caller keeps
 * what it could not write), so a full disk is neither lost data nor a busy loop.
 *
 * The overlap: a synced write takes milliseconds whatever its size, and the work a commit's
 * waiters do next (a closed loop of triggers: the next run, its start and end) used to run only
 * once every waiter was answered, with the disk idle, and then the commit after it with the CPU
 * idle. So a commit's waiters are answered a slice at a time, one slice per turn, and each turn
 * first starts the next commit if none is on the disk: the later slices' work overlaps the next
 * commit's write. Answering later never answers early: a slice is resolved only after its own
 * commit, and slices in the order their saves were made.
 */
export class GroupCommit {
  readonly #commit: () => Promise<void>;
  readonly #hooks: GroupCommitHooks;
  /** Saves made since the last commit started. */
  #batch: Batch | undefined;
  /** Committed slices not yet answered, oldest first. */
  readonly #durable: Slice[] = [];
  /** Saves the committed slices not yet answered hold. */
  #durableSaves = 0;
  /** A commit is on the disk. */
  #writing = false;
  /** A failed commit waits for its retry. */
  #backingOff = false;
  #turnQueued = false;
  #closed = false;
  #backoff = 50;

  constructor(commit: () => Promise<void>, hooks: GroupCommitHooks) {
    this.#commit = commit;
    this.#hooks = hooks;
  }

  /** A commit is on the disk, waits to retry a failed one, or has saves waiting for the next turn to start it. */
  get committing(): boolean {
    return this.#writing || this.#backingOff || this.#batch !== undefined;
  }

  /** The promise of the next commit, which every save made before it starts shares. */
  request(): Promise<void> {
    if (this.#closed) {
      // Like a failed batch: the caller that awaits it hears SHUTTING_DOWN; a `void` save must not crash the process.
      const refused = Promise.reject(new HostError('SHUTTING_DOWN', 'the store is closed'));
      refused.catch(() => undefined);
      return refused;
    }
    return this.#save();
  }

  #save(): Promise<void> {
    let batch = this.#batch;
    if (!batch) this.#batch = batch = { slices: [slice()], saves: 0 };
    if (batch.saves > 0 && batch.saves % SLICE === 0) batch.slices.push(slice());
    batch.saves++;
    batch.slices[batch.slices.length - 1]!.saves++;
    // setImmediate, not a microtask: every trigger of this tick (and its I/O phase) joins the batch.
    if (!this.#writing && !this.#backingOff) this.#queueTurn();
    return batch.slices[batch.slices.length - 1]!.promise;
  }

  /** Resolves when everything requested so far is committed. */
  flush(): Promise<void> {
    if (this.#batch) return this.#batch.slices[this.#batch.slices.length - 1]!.promise;
    // A commit in flight (or a retry) with nothing after it: wait for it with an empty batch.
    if (this.committing) return this.request();
    // Committed, not all answered yet: the last slice is answered last.
    const last = this.#durable.at(-1);
    return last ? last.promise : Promise.resolve();
  }

  /** Refuses new requests; a commit in flight finishes (see `committing`), and so does one already requested. */
  close(): void {
    this.#closed = true;
  }

  #queueTurn(): void {
    if (this.#turnQueued) return;
    this.#turnQueued = true;
    setImmediate(this.#turn);
  }

  /**
   * One turn either starts the next commit or answers the oldest committed slice. Not both: the
   * commit's first awaits would wait behind the slice's work in the microtask queue, and its
   * write would reach the disk only once that work is done.
   *
   * The next commit starts once the disk is free and it holds at least as many saves as are
   * still to be answered (or nothing is): a closed loop settles into two halves, one on the disk
   * while the other's waiters are answered and do their next work. Starting at every free turn
   * would write many small commits when the disk is fast, and a commit costs the process
   * ~0.3–0.9 ms of CPU whatever its size on this VM (measured: 85 runs a commit took twice the
   * CPU per run of 1,024).
   */
  readonly #turn = (): void => {
    this.#turnQueued = false;
    const batch = this.#batch;
    if (batch && !this.#writing && !this.#backingOff && batch.saves >= this.#durableSaves) void this.#write(batch);
    else this.#answer();
    if (this.#durable.length > 0 || (this.#batch && !this.#writing && !this.#backingOff)) this.#queueTurn();
  };

  #answer(): void {
    const next = this.#durable.shift();
    if (!next) return;
    this.#durableSaves -= next.saves;
    next.resolve();
  }

  async #write(batch: Batch): Promise<void> {
    this.#batch = undefined;
    this.#writing = true;
    try {
      await this.#commit();
    } catch (err) {
      this.#writing = false;
      const reason = this.#hooks.failed(err, this.#backoff);
      for (const s of batch.slices) s.reject(reason);
      if (this.#closed) {
        // No retry once closed (the store's closing checkpoint comes next): saves made before
        // the close that wait for a later commit hear the same failure rather than nothing.
        const waiting = this.#batch as Batch | undefined; // set again by saves made during the write
        this.#batch = undefined;
        for (const s of waiting?.slices ?? []) s.reject(reason);
        return;
      }
      // The dirty set was kept: retry it, backing off so a full disk is not a busy loop.
      this.#backingOff = true;
      void this.#save();
      setTimeout(() => {
        this.#backingOff = false;
        this.#queueTurn();
      }, this.#backoff);
      this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF);
      return;
    }
    this.#writing = false;
    this.#backoff = 50;
    this.#hooks.committed();
    this.#durable.push(...batch.slices);
    this.#durableSaves += batch.saves;
    // The oldest slice at once: what its waiters do next (a run dispatched and started, an HTTP
    // answer's audit record) joins the commit the next turn starts rather than the one after it.
    this.#answer();
    if (this.#durable.length > 0 || this.#batch) this.#queueTurn();
  }
}
