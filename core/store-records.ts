import { z } from 'zod';

/**
 * The shapes of the store's records as they are on disk, checked with zod when they are read
 * back: a line that is valid JSON but not a record of its file's kind is damage too (bytes
 * changed inside it), and an unfinished run that lacks its attempts would break recovery.
 * Loose objects: fields added later pass through untouched.
 */

const iso = z.string().min(1);
const runError = z.looseObject({ code: z.string(), message: z.string() });

/** A run record (a journal's `r`, a segment's line). */
export const storedRun = z.looseObject({
  id: z.string().min(1),
  job: z.string().min(1),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']),
  source: z.string(),
  priority: z.number(),
  key: z.string().nullable(),
  queue: z.string(),
  createdAt: iso,
  runAt: iso,
  startedAt: iso.nullable(),
  endedAt: iso.nullable(),
  durationMs: z.number().nullable(),
  progress: z.looseObject({ fraction: z.number(), text: z.string().nullable() }),
  attempts: z.array(z.looseObject({ n: z.number(), startedAt: iso, endedAt: iso.nullable(), error: runError.nullable() })),
  maxAttempts: z.number(),
  error: runError.nullable(),
});

/** A finished run, as a history segment holds it. */
export const segmentLine = storedRun.extend({ status: z.enum(['succeeded', 'failed', 'canceled']) });

const storedNotification = z.looseObject({
  id: z.string().min(1),
  job: z.string(),
  runId: z.string(),
  status: z.string(),
  title: z.string(),
  message: z.string(),
  priority: z.string(),
  tags: z.array(z.string()),
  at: iso,
});

/** What a damaged line held, as far as its bytes still tell. */
export const lostLine = z.object({
  /** 1-based line number in the file. */
  line: z.number().int().positive(),
  record: z.enum(['finished run', 'unfinished run', 'run', 'job flags', 'notification', 'damage report', 'unknown']),
  runId: z.string().nullable(),
  job: z.string().nullable(),
  status: z.string().nullable(),
  /** Another record of the same run loaded (an earlier or later state of it): the run itself is not gone. */
  loadedElsewhere: z.boolean(),
});

/** One damaged store file, as reported in the log, on `/ready` and kept in the checkpoint until acknowledged. */
export const damageReport = z.object({
  /** Stable for the same damage: the file and its damaged lines. */
  id: z.string().min(1),
  kind: z.enum(['journal', 'segment']),
  /** The journal's or segment's number. */
  n: z.number().int().nonnegative(),
  /** Relative to the store directory. */
  file: z.string(),
  /** The copy of the file as it was found, relative to the store directory (null if the copy failed). */
  aside: z.string().nullable(),
  foundAt: iso,
  /** 1-based line numbers of the lines that did not load. */
  lines: z.array(z.number().int().positive()),
  /** Lines the segment's index counts that the file no longer has (it was cut short). */
  missing: z.number().int().nonnegative(),
  lost: z.array(lostLine),
  acknowledgedAt: iso.nullable(),
});

export type LostLine = z.output<typeof lostLine>;
export type DamageReport = z.output<typeof damageReport>;

const jobFlags = z.object({ enabled: z.boolean().nullable(), lastFireAt: z.number().nullable() });

/** A journal line: a run's state, a job's flags, a notification, or a damage report (new or acknowledged). */
export const journalLine = z.union([
  z.object({ r: storedRun }),
  z.object({ j: z.string().min(1), f: jobFlags }),
  z.object({ n: storedNotification }),
  z.object({ d: damageReport }),
]);

/** A check for `NdjsonFile`: true when `value` is a record of the schema. */
export function checkWith(schema: z.ZodType): (value: unknown) => boolean {
  return (value) => schema.safeParse(value).success;
}
