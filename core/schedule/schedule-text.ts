import { createRequire } from 'node:module';
import type { ScheduleSpec } from '../contract/plugin-schema.js';

/**
 * A schedule in words for people ("At 07:00", "Every 15 minutes"), shown by the API and the
 * dashboard beside the expression. Cron goes through cronstrue; `{ every }` is spelled out here.
 */

const texts = new WeakMap<ScheduleSpec, string>();

type Cronstrue = typeof import('cronstrue').default;
let cronstrue: Cronstrue | undefined;

/** cronstrue (CommonJS), required by the first cron schedule put in words: a start with none never loads it (issue 26). */
function describer(): Cronstrue {
  cronstrue ??= createRequire(import.meta.url)('cronstrue') as Cronstrue;
  return cronstrue;
}

const UNITS: ReadonlyArray<[ms: number, one: string]> = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1000, 'second'],
];

function everyText(ms: number, label: string): string {
  for (const [size, unit] of UNITS) {
    if (ms % size !== 0) continue;
    const n = ms / size;
    return n === 1 ? `Every ${unit}` : `Every ${n} ${unit}s`;
  }
  return `Every ${label}`;
}

/** The schedule in words, or null for a trigger-only job. Computed once per resolved schedule. */
export function scheduleText(spec: ScheduleSpec | null): string | null {
  if (spec === null) return null;
  let text = texts.get(spec);
  if (text === undefined) {
    if (spec.kind === 'every') {
      text = everyText(spec.ms, spec.label);
    } else {
      try {
        text = describer().toString(spec.expr, { use24HourTimeFormat: true, verbose: false });
      } catch {
        // croner accepts a few forms cronstrue cannot read: fall back to the expression itself.
        text = spec.expr;
      }
    }
    texts.set(spec, text);
  }
  return text;
}
