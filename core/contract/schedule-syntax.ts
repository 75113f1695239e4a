import { Cron } from 'croner';
import { HostError } from './errors.js';

/**
 * What a valid schedule and timezone are, for the plugin and config schemas. When a schedule
 * fires (the daylight-saving rules) is `schedule/cron.ts`'s business; it builds on these.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A cached formatter that reads an instant's wall clock in `timezone`; throws RangeError for an unknown zone. */
export function zoneFormatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** Throws INVALID_TIMEZONE unless `timezone` is an IANA zone this Node knows. */
export function assertTimezone(timezone: string, field = 'timezone'): void {
  // Known everywhere, and the default: no formatter made for it (the first costs ICU's zone data, 15–40 ms of a start).
  if (timezone === 'UTC') return;
  try {
    zoneFormatter(timezone);
  } catch {
    throw new HostError('INVALID_TIMEZONE', `${field}: invalid timezone ${JSON.stringify(timezone)}`, { field });
  }
}

function cronError(expr: string, reason: string, field: string): HostError {
  return new HostError('INVALID_CRON', `${field}: invalid cron ${JSON.stringify(expr)} (${reason})`, { field, expr });
}

/**
 * Checks a cron expression (5 or 6 fields, seconds first, or croner's `@` nicknames) and returns
 * its pattern, matched on naive wall time (UTC) with day-of-month OR day-of-week. Throws
 * INVALID_CRON naming `field`.
 */
export function cronPattern(expr: string, field = 'schedule'): Cron {
  const trimmed = expr.trim();
  if (!trimmed.startsWith('@')) {
    const fields = trimmed.split(/\s+/).length;
    if (fields !== 5 && fields !== 6) throw cronError(expr, `expected 5 or 6 fields, got ${fields}`, field);
  }
  let pattern: Cron;
  try {
    pattern = new Cron(trimmed, { timezone: 'UTC', domAndDow: false });
  } catch (err) {
    throw cronError(expr, (err as Error).message.replace(/^CronPattern: /, ''), field);
  }
  if (pattern.nextRun(new Date(0)) === null) throw cronError(expr, 'it never fires', field);
  return pattern;
}
