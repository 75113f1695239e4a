import type { Redis } from 'ioredis';
import { HostError } from '../contract/errors.js';
import type { Connections } from './connections.js';

/**
 * `backend.waitReplicas` (SPEC §11): Redis replicates asynchronously, so a write the master
 * accepted can be lost when a replica without it is promoted. An acknowledged write (a trigger's
 * add, a cancel, a job's flags, a notification and its redeliveries) is followed by `WAIT N
 * timeout` on the connection that made it (WAIT counts that connection's writes): the
 * acknowledgement is given only once N replicas have it. Redis 7.0 has no WAITAOF: a replica has
 * the write in memory (and in its AOF under its own `appendfsync`).
 */

/** Seconds a client is told to wait before trying again after a write was not replicated in time. */
const RETRY_AFTER_S = 2;

/** Resolves once `backend.waitReplicas` replicas have every write `client` made; BACKEND_NOT_REPLICATED when they do not in time. */
export async function replicated(connections: Connections, client: Redis): Promise<void> {
  const { count, timeoutMs } = connections.replicas;
  if (count === 0) return;
  const got = await connections.call(() => client.wait(count, timeoutMs));
  if (got >= count) return;
  throw new HostError(
    'BACKEND_NOT_REPLICATED',
    `Redis at ${connections.target} took the write but only ${got} of the ${count} replicas backend.waitReplicas asks for had it within ${timeoutMs} ms: not acknowledged (it may still take effect); retry after ${RETRY_AFTER_S}s`,
    { retryAfter: RETRY_AFTER_S, redis: connections.target, replicas: got, waitReplicas: count },
  );
}
