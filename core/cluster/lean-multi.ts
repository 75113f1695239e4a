import type { Redis } from 'ioredis';

/**
 * ioredis's MULTI without its per-transaction copy of the connection's scripts (issue 26). Each
 * `redis.multi()` builds a Pipeline whose constructor copies every script defined on the
 * connection (BullMQ's ~50 and jobhost's ~30, each with its Buffer twin) onto the new object as
 * own properties: about a third of a millisecond per MULTI here, paid by every batch of run ends.
 * This builds the same transaction (ioredis's own `multi()`, on a stand-in of the connection
 * whose script sets are empty) and gives it the scripts through a prototype made once per
 * connection (again when scripts were added). What goes on the wire and how replies come back is
 * ioredis's MULTI unchanged. Relies on ioredis 5's Pipeline reading `scriptsSet` and
 * `addedBuiltinSet` only in its constructor and sending through its `redis` field; the cluster
 * tests exercise every end through this path.
 */

/** A MULTI as BullMQ's transaction wrapper shapes it: `runCommand(name, args)` queues one of its scripts. */
export interface LeanTransaction {
  readonly length: number;
  runCommand(name: string, args: unknown[]): LeanTransaction;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

interface Commander {
  scriptsSet: Record<string, unknown>;
  addedBuiltinSet: Set<string>;
  multi(): object;
  [name: string]: unknown;
}

interface Lean {
  /** Scripts defined when the prototype was made: more means make it again. */
  scripts: number;
  builtins: number;
  proto: object;
  standIn: object;
}

const made = new WeakMap<object, Lean>();
const EMPTY_SCRIPTS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

function leanOf(client: Commander): Lean {
  const scripts = Object.keys(client.scriptsSet);
  let lean = made.get(client);
  if (lean && lean.scripts === scripts.length && lean.builtins === client.addedBuiltinSet.size) return lean;
  const sample = client.multi() as object;
  // The methods a Pipeline gets from its constructor, once, on a prototype between it and Pipeline's.
  const proto = Object.create(Object.getPrototypeOf(sample) as object) as Record<string, unknown>;
  for (const name of [...scripts, ...client.addedBuiltinSet]) {
    proto[name] = client[name];
    proto[`${name}Buffer`] = client[`${name}Buffer`];
  }
  // BullMQ's wrapper adds `runCommand` to each transaction: the same, shared.
  proto['runCommand'] = function (this: Record<string, (args: unknown[]) => unknown>, name: string, args: unknown[]) {
    this[name]!(args);
    return this;
  };
  const standIn = Object.create(client as object, { scriptsSet: { value: EMPTY_SCRIPTS }, addedBuiltinSet: { value: new Set<string>() } }) as object;
  lean = { scripts: scripts.length, builtins: client.addedBuiltinSet.size, proto, standIn };
  made.set(client, lean);
  return lean;
}

/** A MULTI on `client` (a plain ioredis connection, with scripts defined) whose scripts are queued as on `client.multi()`. */
export function leanMulti(client: Redis): LeanTransaction {
  const c = client as unknown as Commander;
  const lean = leanOf(c);
  const multi = c.multi.call(lean.standIn) as { redis: unknown };
  // It sends through the connection itself (the stand-in served the constructor only).
  multi.redis = client;
  Object.setPrototypeOf(multi, lean.proto);
  return multi as unknown as LeanTransaction;
}
