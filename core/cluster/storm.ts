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

  async throttle(key: string, ms: number, status: string): Promise<boolean> {
    return (await this.#redis.jhThrottle(this.#keys.stormWindow(key), this.#keys.stormHeld(key), String(Math.max(1, Math.round(ms))), status)) === 1;
  }

  async takeHeld(key: string): Promise<Record<string, number>> {
    const flat = await this.#redis.jhTakeHeld(this.#keys.stormHeld(key));
    const held: Record<string, number> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) held[flat[i]!] = Number(flat[i + 1]);
    return held;
  }
}
