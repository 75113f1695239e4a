import { z } from 'zod';
import { notificationFields } from '../contract/notification.js';
import { damageReport } from '../contract/store-health.js';

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

const storedNotification = z.looseObject({ ...notificationFields, id: z.string().min(1), at: iso });

const missedWatch = z.object({ fireAt: z.number(), deadline: z.number(), runId: z.string().nullable(), reason: z.string() });
const jobFlags = z.object({
  enabled: z.boolean().nullable(),
  lastFireAt: z.number().nullable(),
  missedThrough: z.number().nullable().optional(),
  missedWatches: z.array(missedWatch).optional(),
  slowTold: z.array(z.string()).optional(),
});

/** A batch of a run's log lines (each line is checked as it is applied: a bad one is skipped, not damage). */
const logBatch = z.object({ l: z.string().min(1), log: z.looseObject({ lines: z.array(z.unknown()), dropped: z.number() }) });

/** An audit record (SPEC §14). */
const storedAudit = z.looseObject({
  id: z.string().min(1),
  at: iso,
  token: z.string(),
  action: z.string(),
  target: z.string(),
  ip: z.string(),
  outcome: z.enum(['ok', 'forbidden', 'error']),
});

/** A journal line: a run's state, a job's flags, a notification, a damage report (new or acknowledged), log lines, or an audit record. */
export const journalLine = z.union([
  z.object({ r: storedRun }),
  z.object({ j: z.string().min(1), f: jobFlags }),
  z.object({ n: storedNotification }),
  z.object({ d: damageReport }),
  logBatch,
  z.object({ a: storedAudit }),
]);

const position = z.object({ segment: z.number().int().nonnegative(), line: z.number().int().nonnegative() });
const segmentInfo = z.looseObject({
  n: z.number().int().positive(),
  count: z.number().int().nonnegative(),
  minId: z.string(),
  maxId: z.string(),
  maxEndedAt: z.string(),
  jobs: z.record(z.string(), z.number()),
  statuses: z.record(z.string(), z.number()),
});

/** state.json: JSON that is not this was changed from outside, as much as JSON that does not parse. */
export const checkpointDoc = z.looseObject({
  version: z.literal(1),
  checkpoint: z.number().int().nonnegative(),
  openSegment: z.number().int().nonnegative(),
  foldFrom: position.optional(),
  foldSkip: z.array(z.string()).optional(),
  segments: z.array(segmentInfo),
  jobs: z.record(z.string(), z.looseObject({})),
  live: z.array(storedRun),
  notifications: z.array(storedNotification),
  damage: z.array(z.unknown()).optional(),
  logs: z.record(z.string(), z.unknown()).optional(),
  audit: z.array(storedAudit).optional(),
});

/** A check for `NdjsonFile`: true when `value` is a record of the schema. */
export function checkWith(schema: z.ZodType): (value: unknown) => boolean {
  return (value) => schema.safeParse(value).success;
}
