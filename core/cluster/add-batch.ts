import type { Redis } from 'ioredis';
import { HostError } from '../contract/errors.js';
import type { Connections } from './connections.js';
import { replicated } from './replication.js';

/**
 * The adds of one event-loop turn go to Redis in one MULTI, as BullMQ's `addBulk` does: a trigger
 * costs a round trip and an EXEC per turn instead of one each (issue 26). Each add keeps its own
 * commands (admission, BullMQ's add, the index) in its own order, so the MULTI is the same as the
 * adds' MULTIs one after the other, with nothing between them; each add reads its own replies,
 * so a refusal or a script error stays that add's. The batch is acknowledged once EXEC returned
 * (Redis has every add) and, with `backend.waitReplicas`, after one WAIT on the connection that
 * made it: WAIT counts that connection's writes, so it covers every add of the batch.
 */

export type Reply = [Error | null, unknown];

/** A transaction being built: ioredis's MULTI, with the commands defined on its connection. */
export interface Transaction {
  readonly length: number;
  exec(): Promise<Reply[] | null>;
}

/** One add: puts its commands on the MULTI (synchronously), then reads its own replies. */
export interface StagedAdd<T> {
  /** The connection whose MULTI takes the commands (its scripts are defined on it). */
  client: Promise<Redis>;
  stage(multi: Transaction): void;
  read(replies: Reply[]): T;
  /** True when the replies say the add wrote something the acknowledgement has to wait replicas for. */
  wrote(result: T): boolean;
}

interface Pending {
  add: StagedAdd<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** At most this many adds in one MULTI (as many as BullMQ's bench adds a call); the rest go in the next. */
const MAX_BATCH = 1000;

export class AddBatch {
  readonly #connections: Connections;
  #pending: Pending[] = [];
  #scheduled = false;

  constructor(connections: Connections) {
    this.#connections = connections;
  }

  /** Queues `add` for this turn's MULTI; resolves with what its replies say once Redis (and the replicas asked for) have it. */
  add<T>(add: StagedAdd<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ add: add as StagedAdd<unknown>, resolve: resolve as (v: unknown) => void, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      // After the poll phase: the triggers of every request and reply read in this turn join it.
      setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const all = this.#pending;
    this.#pending = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) void this.#send(all.slice(i, i + MAX_BATCH));
  }

  async #send(batch: Pending[]): Promise<void> {
    // One MULTI per connection (every queue shares the producer's, so one in practice).
    const byClient = new Map<Redis, Pending[]>();
    for (const p of batch) {
      let client: Redis;
      try {
        client = await p.add.client;
      } catch (err) {
        p.reject(this.#connections.toHostError(err));
        continue;
      }
      const list = byClient.get(client);
      if (list) list.push(p);
      else byClient.set(client, [p]);
    }
    await Promise.all([...byClient].map(([client, list]) => this.#exec(client, list)));
  }

  async #exec(client: Redis, list: Pending[]): Promise<void> {
    let staged: { p: Pending; from: number; to: number }[] = [];
    let multi: Transaction;
    // An add that cannot be staged (BullMQ refusing its options) is refused alone; the MULTI that
    // holds its first commands is dropped unsent and the others are staged on a fresh one.
    for (;;) {
      multi = client.multi() as unknown as Transaction;
      staged = [];
      let failed: Pending | undefined;
      for (const p of list) {
        const from = multi.length;
        try {
          p.add.stage(multi);
        } catch (err) {
          failed = p;
          p.reject(this.#connections.toHostError(err));
          break;
        }
        staged.push({ p, from, to: multi.length });
      }
      if (!failed) break;
      list = list.filter((p) => p !== failed);
      if (list.length === 0) return;
    }
    // The MULTI's own entry comes first in ioredis's queue (and EXEC is queued last by exec()).
    const base = staged[0]?.from ?? 0;
    const count = multi.length - base;
    let replies: Reply[] | null;
    try {
      replies = await multi.exec();
    } catch (err) {
      const e = this.#connections.toHostError(err);
      for (const { p } of staged) p.reject(e);
      return;
    }
    if (replies?.length !== count) {
      const e = new HostError('INTERNAL', 'the add transaction was discarded');
      for (const { p } of staged) p.reject(e);
      return;
    }
    const results: { p: Pending; value: unknown }[] = [];
    let wrote = false;
    for (const { p, from, to } of staged) {
      try {
        const value = p.add.read(replies.slice(from - base, to - base));
        if (p.add.wrote(value)) wrote = true;
        results.push({ p, value });
      } catch (err) {
        p.reject(err);
      }
    }
    // The acknowledgement waits for the replicas backend.waitReplicas asks for (a refusal acknowledges nothing).
    if (wrote) {
      try {
        await replicated(this.#connections, client);
      } catch (err) {
        for (const { p, value } of results) {
          if (p.add.wrote(value)) p.reject(err);
          else p.resolve(value);
        }
        return;
      }
    }
    for (const { p, value } of results) p.resolve(value);
  }
}
