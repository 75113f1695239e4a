import type { Redis } from 'ioredis';
import type { Logger } from '../contract/logger.js';

/**
 * A connection ioredis ended on its own, made again. Through Sentinel, ioredis 5 ends a
 * connection for good ("Connection is closed." to every command, no reconnect) when Sentinel's
 * `+switch-master` reaches its failover detector while a reconnect is asking a Sentinel for the
 * master: the detector's `connector.disconnect()` makes that connect fail, and a failed connect
 * sets the status `end` (redis/ioredis#1683 is the symptom). Seen here after a killed master: a
 * host answered 503 for ever while the other took triggers again. `end` is otherwise only what
 * a deliberate close leaves (our retry strategies always retry), so while the owner still wants
 * the connection it is connected again.
 */

/** A revived connection is connected again this long after it ended (the next `end` schedules another). */
const REVIVE_MS = 200;

/** Connections their user closed on purpose before their owner's close (the stream reader's, at stop). */
const released = new WeakSet<Redis>();

/** Says `client` is being closed on purpose: it is not connected again. */
export function release(client: Redis): void {
  released.add(client);
}

/** Connects `client` again whenever it ends while `wanted()` holds and it was not released. */
export function keepConnected(client: Redis, wanted: () => boolean, logger: Logger, name: string): void {
  const revive = (): boolean => wanted() && !released.has(client);
  client.on('end', () => {
    if (!revive()) return;
    logger.warn({ connection: name }, 'the Redis connection was ended without a close (a failover raced its reconnect): connecting it again');
    setTimeout(() => {
      if (revive() && client.status === 'end') client.connect().catch(() => undefined);
    }, REVIVE_MS).unref();
  });
}

/**
 * Ends `client` for good. ioredis 5 starts a Sentinel connection's failover detector when its
 * socket connects, even when a disconnect came while it was connecting: that detector's own
 * Sentinel clients then reconnect every minute for ever (and keep the process alive after a stop;
 * seen when a host stopped during a failover). A connect in flight is let end (within `ms`), and a
 * second disconnect cleans up the detector it started.
 */
export async function endForGood(client: Redis, ms: number): Promise<void> {
  release(client);
  client.disconnect();
  if (client.status !== 'connecting' && client.status !== 'connect') return;
  const ended = await new Promise<boolean>((resolve) => {
    const done = (end: boolean): void => {
      clearTimeout(timer);
      client.off('end', onEnd);
      resolve(end);
    };
    const onEnd = (): void => done(true);
    const timer = setTimeout(() => done(false), ms);
    client.once('end', onEnd);
  });
  // Still connecting (a slow handshake): an ended socket would still connect, and start a
  // detector, until ioredis destroys it (disconnectTimeout, 2 s); a destroyed one never connects.
  if (!ended) client.stream?.destroy();
  client.disconnect();
}
