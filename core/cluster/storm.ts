import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/** Storm control (`Backend.throttle`, `takeHeld`) for the cluster: one window per key (a key with a TTL), the held counts beside it. */
export class StormControl {
  readonly #redis: ScriptedRedis;
  readonly #keys: ClusterKeys;

  constructor(redis: ScriptedRedis, keys: ClusterKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** What the windows before held that no digest took, when this call opened the window; else the ms left in the open one. */
  async throttle(key: string, ms: number, status: string): Promise<number | Record<string, number>> {
    const reply = await this.#redis.jhThrottle(this.#keys.stormWindow(key), this.#keys.stormHeld(key), String(Math.max(1, Math.round(ms))), status);
    return reply.length === 1 ? Number(reply[0]) : counts(reply as string[]);
  }

  async takeHeld(key: string): Promise<Record<string, number>> {
    return counts(await this.#redis.jhTakeHeld(this.#keys.stormHeld(key)));
  }

  /** What the ended window of `key` held, cleared; the ms left while it is still open. */
  async takeEnded(key: string): Promise<Record<string, number> | number> {
    const reply = await this.#redis.jhTakeEnded(this.#keys.stormHeld(key), this.#keys.stormWindow(key));
    return reply.length === 1 ? Number(reply[0]) : counts(reply as string[]);
  }
}

function counts(flat: readonly string[]): Record<string, number> {
  const held: Record<string, number> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) held[flat[i]!] = Number(flat[i + 1]);
  return held;
}
