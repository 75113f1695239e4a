import { z } from 'zod';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { ClusterHost } from '../contract/views.js';
import { Every } from './every.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Which hosts are alive (`GET /cluster`): each host writes its description under its own key
 * every second with a time to live, and reads everybody's in the same round. A host that stops
 * (killed, cut off from Redis) drops out once its key expires, on Redis's clock: after at most
 * HOST_TTL_MS. A host that stops gracefully removes its key at once.
 */

/** How often a host announces itself and reads the others. */
export const HEARTBEAT_MS = 1000;
/** A host not heard of for this long is gone. */
export const HOST_TTL_MS = 5000;

const hostShape = z.object({
  id: z.string(),
  url: z.string().nullable(),
  startedAt: z.string(),
  lastSeen: z.string(),
  running: z.number(),
  jobs: z.array(z.object({ name: z.string(), version: z.string() })),
  destinations: z.array(z.string()).optional(),
});

export interface HeartbeatOptions {
  redis: ScriptedRedis;
  keys: ClusterKeys;
  hostId: string;
  clock: Clock;
  logger: Logger;
  /** This host now. */
  describe(): ClusterHost;
}

export class Heartbeat {
  readonly #o: HeartbeatOptions;
  #hosts: ClusterHost[] = [];
  #beating: Promise<void> | undefined;
  readonly #beats: Every;

  constructor(options: HeartbeatOptions) {
    this.#o = options;
    this.#beats = new Every(options.clock, HEARTBEAT_MS, () => this.beat(), options.logger, 'heartbeat failed');
  }

  /** Live hosts as last read, this one first with what it is now. */
  hosts(): ClusterHost[] {
    const self = this.#o.describe();
    return [self, ...this.#hosts.filter((h) => h.id !== self.id)];
  }

  /** Announces this host and reads the others; rejects when Redis cannot be reached. */
  beat(): Promise<void> {
    this.#beating ??= this.#beat().finally(() => (this.#beating = undefined));
    return this.#beating;
  }

  async #beat(): Promise<void> {
    const { redis, keys, hostId } = this.#o;
    const self = this.#o.describe();
    const [, , ids] = ((await redis
      .multi()
      .set(keys.host(hostId), JSON.stringify(self), 'PX', HOST_TTL_MS)
      .zadd(keys.hosts, this.#o.clock.now(), hostId)
      .zrange(keys.hosts, 0, -1)
      .exec()) ?? []) as Array<[Error | null, unknown]>;
    const list = (ids?.[1] ?? []) as string[];
    const texts = list.length > 0 ? await redis.mget(list.map((id) => keys.host(id))) : [];
    const live: ClusterHost[] = [];
    const gone: string[] = [];
    for (const [i, id] of list.entries()) {
      const text = texts[i];
      if (text === null || text === undefined) {
        gone.push(id);
        continue;
      }
      try {
        const parsed = hostShape.safeParse(JSON.parse(text));
        if (parsed.success) live.push(parsed.data);
      } catch {
        // a damaged entry is skipped; its host rewrites it within a second
      }
    }
    if (gone.length > 0) await redis.zrem(keys.hosts, ...gone);
    if (!this.#beats.stopped) this.#hosts = live.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Beats every HEARTBEAT_MS until `stop()`; a failed beat (Redis down) is tried again at the next tick. */
  start(): void {
    this.#beats.start();
  }

  /** Stops beating and leaves the list at once (best effort: otherwise the key expires). */
  async stop(): Promise<void> {
    this.#beats.stop();
    await this.#beating?.catch(() => undefined);
    const { redis, keys, hostId } = this.#o;
    await redis
      .multi()
      .del(keys.host(hostId))
      .zrem(keys.hosts, hostId)
      .exec()
      .catch(() => undefined);
  }
}
