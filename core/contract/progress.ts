import type { Clock, Timer } from './clock.js';
import type { Progress } from './run.js';

/** `run.progress` reports per run are at most one per this interval (~10 per second). */
export const PROGRESS_INTERVAL_MS = 100;

/** `ctx.progress(fraction, text)` applied: the fraction clamped to 0..1 (0 when not a number), the text cut at 1,000 characters, kept when not given. */
export function nextProgress(progress: Progress, fraction: number, text: string | undefined): Progress {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  return { fraction: f, text: text === undefined ? progress.text : String(text).slice(0, 1000) };
}

/** What an attempt keeps to throttle its progress reports. */
export interface ProgressThrottle {
  /** When the last report went out (ms). */
  progressAt: number;
  /** The trailing report, while one is due. */
  progressTimer: Timer | undefined;
}

/**
 * Both backends' progress throttle: a report goes out at once when the last one is at least
 * PROGRESS_INTERVAL_MS old; within the interval, the calls become one trailing report at its end,
 * and `report` then reads the newest value. The owner cancels `progressTimer` when the attempt ends.
 */
export function throttleProgress(clock: Clock, state: ProgressThrottle, report: () => void): void {
  if (state.progressTimer) return; // a trailing report is due and will carry the newest value
  const wait = state.progressAt + PROGRESS_INTERVAL_MS - clock.now();
  if (wait <= 0) {
    state.progressAt = clock.now();
    report();
    return;
  }
  state.progressTimer = clock.setTimer(wait, () => {
    state.progressTimer = undefined;
    state.progressAt = clock.now();
    report();
  });
}
