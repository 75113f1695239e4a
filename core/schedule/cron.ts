import type { Cron } from 'croner';
import { assertTimezone, cronPattern, zoneFormatter } from '../contract/schedule-syntax.js';

/**
 * When a schedule fires. Cron expressions are matched on the job's wall clock by croner (5 or 6
 * fields, seconds first; day-of-month OR day-of-week when both are restricted; 0 and 7 are
 * Sunday), and this module maps wall times to instants with SPEC §2's daylight-saving rule, the
 * one cronie (Vixie cron) follows:
 * - a fixed-time job (second, minute and hour fields all fixed, `30 1 * * *`): a fire time inside
 *   a skipped hour runs once, at the jump; a fire time inside a repeated hour runs once, not twice;
 * - a wildcard job (its second, minute or hour field starts with `*`: `0 * * * *`, every 30 min): it fires
 *   at every instant whose local clock reading matches, so it keeps its pace through both passes
 *   of a repeated hour and does not run for wall times a skipped hour never had.
 *
 * Why not node-cron here: its matcher ANDs day-of-month with day-of-week, drops a fire that falls
 * into a DST gap, and reads the real clock internally, so schedules could not run on an injected
 * clock in tests. croner computes "next after t" from any reference time, which is all we need.
 */
export interface Schedule {
  /** The first fire time strictly after `after` (ms since epoch), or null if it never fires again. */
  next(after: number): number | null;
  /** The schedule as written: the cron expression or `every 15m`. */
  readonly label: string;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The wall-clock reading of `instant` in `timezone`, as a naive UTC timestamp (whole seconds). */
function wallOf(instant: number, timezone: string): number {
  if (timezone === 'UTC') return Math.floor(instant / 1000) * 1000;
  const p: Record<string, number> = {};
  for (const part of zoneFormatter(timezone).formatToParts(instant)) {
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  }
  return Date.UTC(p['year']!, p['month']! - 1, p['day']!, p['hour']!, p['minute']!, p['second']!);
}

function offsetAt(instant: number, timezone: string): number {
  const whole = Math.floor(instant / 1000) * 1000;
  return wallOf(whole, timezone) - whole;
}

/** The first whole second at which the offset differs from the offset at `lo` (lo < hi). */
function transitionBetween(lo: number, hi: number, timezone: string): number {
  const before = offsetAt(lo, timezone);
  let a = Math.floor(lo / 1000);
  let b = Math.ceil(hi / 1000);
  while (b - a > 1) {
    const mid = Math.floor((a + b) / 2);
    if (offsetAt(mid * 1000, timezone) === before) a = mid;
    else b = mid;
  }
  return b * 1000;
}

type Resolved = { kind: 'exact'; at: number } | { kind: 'gap'; at: number } | { kind: 'fold'; at: number; foldEndWall: number };

/** Maps a wall time to the instant it names; a gap resolves to the jump, a fold to its first pass. */
function resolveWall(wall: number, timezone: string): Resolved {
  const before = offsetAt(wall - 24 * HOUR, timezone);
  const after = offsetAt(wall + 24 * HOUR, timezone);
  const t1 = wall - before;
  if (before === after) return { kind: 'exact', at: t1 };
  const t2 = wall - after;
  const ok1 = wallOf(t1, timezone) === wall;
  const ok2 = wallOf(t2, timezone) === wall;
  if (ok1 && ok2) {
    const first = Math.min(t1, t2);
    const transition = transitionBetween(first, Math.max(t1, t2), timezone);
    // Wall times in [transition + after, transition + before) occur twice.
    return { kind: 'fold', at: first, foldEndWall: transition + before };
  }
  if (ok1) return { kind: 'exact', at: t1 };
  if (ok2) return { kind: 'exact', at: t2 };
  return { kind: 'gap', at: transitionBetween(Math.min(t1, t2), Math.max(t1, t2), timezone) };
}

/** The nicknames croner knows, as the fields they stand for. */
const NICKNAMES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/**
 * SPEC §2 (cronie's rule): a job is a wildcard job when its second, minute or hour field starts
 * with `*` (`?` is croner's spelling of the same); otherwise it is a fixed-time job. A 5-field
 * expression has a fixed second (0).
 */
export function isWildcardCron(expr: string): boolean {
  const trimmed = expr.trim();
  const fields = (NICKNAMES[trimmed.toLowerCase()] ?? trimmed).split(/\s+/);
  const timeFields = fields.length === 6 ? fields.slice(0, 3) : fields.slice(0, 2);
  return timeFields.some((f) => f.startsWith('*') || f.startsWith('?'));
}

/**
 * The first whole second in [from, to] whose offset differs from `offset`, or null. Sampled a day
 * apart, then bisected: zones change offset at most a few times a year, never twice in a day.
 */
function offsetChange(from: number, to: number, offset: number, timezone: string): number | null {
  let lo = from;
  while (lo < to) {
    const hi = Math.min(lo + DAY, to);
    if (offsetAt(hi, timezone) !== offset) return transitionBetween(lo, hi, timezone);
    lo = hi;
  }
  return null;
}

/**
 * A wildcard job's next fire: the first instant after `after` whose local reading matches. Within
 * a stretch of constant offset, readings and instants move together, so croner's next wall time
 * maps to one instant; when an offset change comes first, the search starts again from it, with
 * the new offset (a fold's second pass reads earlier wall times again; a gap's readings never occur).
 */
function nextByReading(pattern: Cron, timezone: string, after: number): number | null {
  // Candidates are whole seconds; `lo` is the last second that is not one.
  let lo = Math.floor(after / 1000) * 1000;
  // Bounded: each round either returns or moves past an offset change.
  for (let i = 0; i < 1000; i++) {
    const offset = offsetAt(lo + 1000, timezone);
    const wall = pattern.nextRun(new Date(lo + offset))?.getTime();
    if (wall === undefined) return null;
    const at = wall - offset;
    const change = offsetChange(lo + 1000, at, offset, timezone);
    if (change === null) return at;
    lo = change - 1000;
  }
  return null;
}

/**
 * A fixed-time job's next fire: croner's next wall time, mapped to the instant it names; a wall
 * time in a gap runs at the jump, one in a fold on its first pass only.
 */
function nextByWallTime(pattern: Cron, timezone: string, after: number): number | null {
  let wall = wallOf(after, timezone);
  // Bounded: each step moves wall time forward; only a fold's second pass takes more than one.
  for (let i = 0; i < 10_000; i++) {
    const nextWall = pattern.nextRun(new Date(wall))?.getTime();
    if (nextWall === undefined) return null;
    const r = resolveWall(nextWall, timezone);
    if (r.at > after) return r.at;
    // Already past: a gap fire that ran at the jump, or the first pass of a fold.
    wall = r.kind === 'fold' ? Math.max(nextWall, r.foldEndWall - 1000) : nextWall;
  }
  return null;
}

/** Compiles a cron expression for `timezone`; throws INVALID_CRON / INVALID_TIMEZONE naming `field`. */
export function cronSchedule(expr: string, timezone: string, field = 'schedule'): Schedule {
  assertTimezone(timezone, field === 'schedule' ? 'timezone' : field.replace(/schedule$/, 'timezone'));
  const trimmed = expr.trim();
  // Matching happens on naive wall time, so croner works in UTC and we map to the real zone.
  const pattern = cronPattern(expr, field);
  const next = isWildcardCron(trimmed) ? nextByReading : nextByWallTime;
  return {
    label: trimmed,
    next: (after) => next(pattern, timezone, after),
  };
}

/** `{ every: '15m' }`: fires on multiples of the interval counted from the Unix epoch (UTC). */
export function everySchedule(ms: number, label: string): Schedule {
  return {
    label: `every ${label}`,
    next: (after) => (Math.floor(after / ms) + 1) * ms,
  };
}
