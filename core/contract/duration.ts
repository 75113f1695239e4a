import { HostError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;
const ZERO = /^\s*0+(?:\.0+)?\s*$/;

/** The longest duration accepted: 100 years. Longer ones would push times past what a Date holds. */
export const MAX_DURATION_MS = 36_500 * 86_400_000;

/** A duration as users write it: milliseconds, or `'250ms' | '30s' | '5m' | '2h' | '1d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}` | string;

/** Parses a duration into milliseconds; throws INVALID_DURATION naming `field`. */
export function parseDuration(value: unknown, field = 'duration'): number {
  let ms = Number.NaN;
  if (typeof value === 'number') {
    if (value >= 0) ms = Math.round(value);
  } else if (typeof value === 'string') {
    const m = PATTERN.exec(value);
    if (m) ms = Math.round(Number(m[1]) * UNITS[m[2] as string]!);
    // Zero needs no unit (`"throttle": "0"`); any other number in a string does.
    else if (ZERO.test(value)) ms = 0;
  }
  if (ms > MAX_DURATION_MS) {
    throw new HostError('INVALID_DURATION', `${field}: ${JSON.stringify(value)} is longer than the limit of 36500d`, { field });
  }
  if (ms >= 0) return ms;
  throw new HostError('INVALID_DURATION', `${field}: invalid duration ${JSON.stringify(value)} (use ms or '250ms', '30s', '5m', '2h', '1d')`, { field });
}

/** Formats milliseconds compactly for logs and the dashboard: 90000 → '1m30s'. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}
