/**
 * The ends of runs written in one event-loop turn go to Redis in one MULTI (issue 26): each end
 * is BullMQ's move-to-finished and jobhost's fold, two commands, and making a MULTI costs more
 * than it looks (ioredis copies every script defined on the connection, BullMQ's and ours, onto
 * each one). Each end keeps its two commands in order and reads its own two replies, so the
 * MULTI is the ends' own MULTIs one after the other; a refused end (a lost lock) stays that end's.
 * The MULTI is made by `lean-multi.ts`, which skips that copy.
 */

export type EndReply = [Error | null, unknown];

/** The MULTI of a connection, as far as the ends use it. */
export interface EndTransaction {
  readonly length: number;
  exec(): Promise<EndReply[] | null>;
}

interface Pending {
  stage(multi: EndTransaction): void;
  resolve(replies: EndReply[]): void;
  reject(err: unknown): void;
}

export class EndBatch<C> {
  readonly #pending = new Map<C, Pending[]>();
  readonly #multi: (client: C) => EndTransaction;
  #scheduled = false;

  /** `multi`: a MULTI on that connection (`lean-multi.ts`). */
  constructor(multi: (client: C) => EndTransaction) {
    this.#multi = multi;
  }

  /** Queues an end on this turn's MULTI of `client`; resolves with its own replies once EXEC returned. */
  end(client: C, stage: (multi: EndTransaction) => void): Promise<EndReply[]> {
    return new Promise((resolve, reject) => {
      const list = this.#pending.get(client);
      if (list) list.push({ stage, resolve, reject });
      else this.#pending.set(client, [{ stage, resolve, reject }]);
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const all = [...this.#pending];
    this.#pending.clear();
    for (const [client, list] of all) void this.#exec(client, list);
  }

  async #exec(client: C, list: Pending[]): Promise<void> {
    const multi = this.#multi(client);
    const staged: { p: Pending; from: number; to: number }[] = [];
    for (const p of list) {
      const from = multi.length;
      try {
        p.stage(multi);
      } catch (err) {
        // Nothing of it is sent alone: its commands (if any) are left out of the replies it gets.
        p.reject(err);
        continue;
      }
      staged.push({ p, from, to: multi.length });
    }
    if (staged.length === 0) return;
    const base = staged[0]!.from;
    const count = multi.length - base;
    let replies: EndReply[] | null;
    try {
      replies = await multi.exec();
    } catch (err) {
      for (const { p } of staged) p.reject(err);
      return;
    }
    if (replies?.length !== count) {
      const err = new Error('the transaction ending the runs was discarded');
      for (const { p } of staged) p.reject(err);
      return;
    }
    for (const { p, from, to } of staged) p.resolve(replies.slice(from - base, to - base));
  }
}
