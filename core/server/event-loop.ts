import { createHistogram } from 'node:perf_hooks';

/**
 * Watches the main thread's event loop: how late a timer that should fire every 10 ms actually
 * fires. Everything the API, the WebSocket and the scheduler do waits that long. Read in windows
 * (default 1 s): `/metrics` shows the last one, and `/ready` is degraded while the p99 of each of
 * the last few windows (default 3) is above the bound: a loop that *stays* slow, not one late
 * timer. A loop that did not turn at all for as long (one block of 3 windows or more: a handler
 * computing inline) has stayed slow too, though its windows never closed to say so: it counts
 * as slow for as long again once it turns, so `/ready` and the host alert can tell it.
 *
 * The timer is our own, recorded into a `perf_hooks` histogram: `monitorEventLoopDelay` does the
 * same in C++, but its `reset()` (needed for windows) drops the next sample, the one that spans
 * a stall begun around the reset; seen here on Node 20 with stalls of 120–300 ms gone missing.
 */

export interface EventLoopOptions {
  /** Length of one window (default 1000 ms). */
  windowMs?: number | undefined;
  /** Windows in a row above the bound that make the loop count as slow (default 3). */
  windows?: number | undefined;
}

/** The last window's delays, in ms. */
export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface EventLoopWatch {
  /** The last complete window (zeros before the first). */
  delay(): LoopDelay;
  /** Whether the p99 of each of the last windows was above `maxDelayMs`, or a block as long as those windows just ended (never when the bound is 0). */
  slow(maxDelayMs: number): boolean;
  /** The block that makes the loop count as slow now (ms), or 0: see `slow`. */
  block(): number;
  stop(): void;
}

const RESOLUTION_MS = 10;

export function watchEventLoop(options: EventLoopOptions = {}): EventLoopWatch {
  const windowMs = options.windowMs ?? 1000;
  const windows = options.windows ?? 3;
  // Delays in µs (the histogram takes integers ≥ 1).
  const histogram = createHistogram();
  const recent: LoopDelay[] = [];
  const blockMs = windows * windowMs;
  let last = performance.now();
  /** After a block of `blockMs` or more: slow until then (performance.now(), as long again), if the block passed the bound. */
  let blockedUntil = 0;
  let block = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    const late = now - last - RESOLUTION_MS;
    histogram.record(Math.max(1, Math.round(late * 1000)));
    if (late >= blockMs) {
      block = late;
      blockedUntil = now + late;
    }
    last = now;
  }, RESOLUTION_MS);
  const ms = (us: number): number => (us <= 1 ? 0 : us / 1000);
  const window = setInterval(() => {
    recent.push(
      histogram.count === 0
        ? { p50Ms: 0, p99Ms: 0, maxMs: 0 }
        : { p50Ms: ms(histogram.percentile(50)), p99Ms: ms(histogram.percentile(99)), maxMs: ms(histogram.max) },
    );
    if (recent.length > windows) recent.shift();
    histogram.reset();
  }, windowMs);
  probe.unref();
  window.unref();
  return {
    delay: () => recent.at(-1) ?? { p50Ms: 0, p99Ms: 0, maxMs: 0 },
    block: () => (performance.now() < blockedUntil ? block : 0),
    slow: (maxDelayMs) =>
      maxDelayMs > 0 && ((recent.length >= windows && recent.every((w) => w.p99Ms > maxDelayMs)) || (block > maxDelayMs && performance.now() < blockedUntil)),
    stop: () => {
      clearInterval(probe);
      clearInterval(window);
    },
  };
}
