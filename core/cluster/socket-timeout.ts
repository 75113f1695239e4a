import type { Redis } from 'ioredis';

/**
 * ioredis 5 leaves a connection's `socketTimeout` timer armed when the connection closes
 * (redis/ioredis#2147; 6.0 clears it in its close handler, #2148). A command outstanding at a
 * close, such as the delivery worker's BZPOPMIN when a host stops, so keeps a timer that holds the
 * process open until it fires (up to `commandTimeout` + BullMQ's longest block, ~21 s): an app that
 * embeds a cluster host did not exit for that long after `host.stop()`. And across a reconnect,
 * the stale timer could destroy the new connection that had answered since.
 *
 * This clears the timer when `redis` closes, as 6.0 does, and does the same for every connection
 * duplicated from it (BullMQ's Worker duplicates the connection it is given for its blocking
 * commands). Relies on the private `socketTimeoutTimer` of ioredis 5.x (pinned to the minor in
 * package.json); `test/core/cluster/stop-exits.test.ts` covers it.
 */
export function clearSocketTimeoutOnClose(redis: Redis): void {
  redis.on('close', () => {
    const r = redis as unknown as { socketTimeoutTimer?: ReturnType<typeof setTimeout> | undefined };
    if (r.socketTimeoutTimer === undefined) return;
    clearTimeout(r.socketTimeoutTimer);
    r.socketTimeoutTimer = undefined;
  });
  const duplicate = redis.duplicate.bind(redis);
  redis.duplicate = (override) => {
    const copy = duplicate(override);
    clearSocketTimeoutOnClose(copy);
    return copy;
  };
}
