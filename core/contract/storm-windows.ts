import type { HeldCounts } from './backend.js';
import type { NotifyStatus } from './notification.js';

/**
 * Storm-control windows in one process (`Backend.throttle` / `takeHeld` of a backend alone): per
 * key, when the open window ends and what was held back in it. One entry per job and destination
 * with a window open, whatever the burst: counts, never the notifications themselves.
 */
export class StormWindows {
  readonly #windows = new Map<string, { until: number; held: HeldCounts }>();

  /**
   * When none is open, a window opens until now + ms, and what the closed one held that its digest
   * has not taken yet is answered (and cleared); else the status is counted as held back, and the
   * ms left in the window.
   */
  throttle(key: string, ms: number, status: NotifyStatus, now: number): number | HeldCounts {
    const w = this.#windows.get(key);
    if (w && w.until > now) {
      w.held[status] = (w.held[status] ?? 0) + 1;
      return w.until - now;
    }
    this.#windows.set(key, { until: now + ms, held: {} });
    return w?.held ?? {};
  }

  /** What the ended window of `key` held, cleared; the ms left while it is open. */
  takeEnded(key: string, now: number): HeldCounts | number {
    const w = this.#windows.get(key);
    if (w && w.until > now) return w.until - now;
    return this.take(key, now);
  }

  /** What was held back under `key`, cleared; a window whose time is up is dropped (the map keeps the live ones only). */
  take(key: string, now: number): HeldCounts {
    const w = this.#windows.get(key);
    if (!w) return {};
    const held = w.held;
    if (w.until <= now) this.#windows.delete(key);
    else w.held = {};
    return held;
  }
}
