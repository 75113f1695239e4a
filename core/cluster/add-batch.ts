import type { Redis } from 'ioredis';
import { HostError } from '../contract/errors.js';
import type { Connections } from './connections.js';
import { leanMulti } from './lean-multi.js';
import { replicated } from './replication.js';

/**
 * The adds of one event-loop turn go to Redis in MULTIs (of up to MAX_BATCH adds), as BullMQ's
 * `addBulk` does: a trigger costs a share of a round trip and an EXEC instead of one each (issue 26). Each add keeps its own
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
  /** BullMQ's client of the queue, resolved once its scripts are defined on `connection`. */
  client: Promise<unknown>;
  /** The connection whose MULTI takes the commands (BullMQ's client wraps it). */
  connection: Redis;
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

/**
 * At most this many adds in one MULTI; the rest go in the next ones, sent as each is staged. One
 * MULTI for a whole turn made Redis wait while the host staged every add, and the host wait while
 * Redis ran them all: in smaller MULTIs, Redis runs the first while the host stages the next
 * (as it does for separate `Queue.add` calls), at an EXEC per this many adds.
 */
const MAX_BATCH = 32;

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
      setImmediate(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const all = this.#pending;
    this.#pending = [];
    // One MULTI per connection (every queue shares the producer's, so one in practice).
    const clients = await Promise.allSettled(all.map((p) => p.add.client));
    const byConnection = new Map<Redis, Pending[]>();
    for (const [i, p] of all.entries()) {
      const client = clients[i]!;
      if (client.status === 'rejected') {
        p.reject(this.#connections.toHostError(client.reason));
        continue;
      }
      const list = byConnection.get(p.add.connection);
      if (list) list.push(p);
      else byConnection.set(p.add.connection, [p]);
    }
    // Each MULTI is written as it is staged (`#exec` runs synchronously up to its EXEC's reply).
    for (const [connection, list] of byConnection) {
      for (let i = 0; i < list.length; i += MAX_BATCH) void this.#exec(connection, list.slice(i, i + MAX_BATCH));
    }
  }

  async #exec(client: Redis, list: Pending[]): Promise<void> {
    let staged: { p: Pending; from: number; to: number }[] = [];
    let multi: Transaction;
    // An add that cannot be staged (BullMQ refusing its options) is refused alone; the MULTI that
    // holds its first commands is dropped unsent and the others are staged on a fresh one.
    for (;;) {
      multi = leanMulti(client) as unknown as Transaction;
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
