/**
 * What jobhost relies on of BullMQ beyond its public API, in one place. jobhost pins BullMQ to
 * its 6.7 minor; an upgrade that changes any item here fails
 * test/core/cluster/bullmq-internals.test.ts (one test per item, against a real redis-server)
 * rather than a run somewhere in production. Where each is used:
 *
 * - job-queues.ts (`ManualWorker`) and deliveries.ts override or call protected Worker members
 *   (WORKER_PROTECTED) and wrap the Redis backend's `execCommand` to fold a run's end into its
 *   job's state in the same MULTI as `moveToFinished` (MOVE_TO_FINISHED: its argument positions);
 * - jobhost's Lua (JOBHOST_SCRIPTS in scripts.ts lists every script) reads BullMQ's keys (`<prefix>:<job>:<suffix>`,
 *   QUEUE_KEYS, and the METRICS_COUNT field of METRICS_KEYS, all passed in KEYS, named by
 *   `queueKey`) and fields of its job hashes (`<prefix>:<job>:<id>`, JOB_FIELD, interpolated into
 *   the scripts), and appends `progress` entries to a queue's events stream as BullMQ does
 *   (EVENTS_MAXLEN_FIELD of its meta hash); admission reads the deduplication key
 *   (`<prefix>:<job>:de:<id>`);
 * - connections.ts sizes the blocking connections' socket timeout by BULLMQ_MAX_BLOCK_MS;
 * - limits-rate.ts reads when a rate-limited worker may fetch again (WORKER_LIMIT_UNTIL), and clears it
 *   when this host's config lifts or raises the limit.
 */

/** The BullMQ minor these facts were checked against (package.json pins `~6.7.0`). */
export const BULLMQ_MINOR = '6.7';

/** Protected members of `Worker` that jobhost's workers override or call. */
export const WORKER_PROTECTED = ['createBackend', 'backendFactory', 'lockManager'] as const;

/** Key suffixes of a BullMQ queue that jobhost's Lua reads. */
export const QUEUE_KEYS = ['wait', 'paused', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'events', 'meta', 'de'] as const;

/** The metrics keys (Worker option `metrics`) whose METRICS_COUNT field gives a job's all-time outcomes. */
export const METRICS_KEYS = ['metrics:completed', 'metrics:failed'] as const;
export const METRICS_COUNT = 'count';

/** The key of a job's BullMQ queue with one of the suffixes above (`<prefix>:<job>:<suffix>`). */
export function queueKey(prefix: string, job: string, suffix: (typeof QUEUE_KEYS)[number] | (typeof METRICS_KEYS)[number]): string {
  return `${prefix}:${job}:${suffix}`;
}

/**
 * Fields of a job hash jobhost's Lua reads or writes (a run's record is its BullMQ job), by name:
 * the scripts interpolate these, so a rename here is a rename everywhere.
 */
export const JOB_FIELD = {
  data: 'data',
  opts: 'opts',
  timestamp: 'timestamp',
  processedOn: 'processedOn',
  finishedOn: 'finishedOn',
  returnvalue: 'returnvalue',
  failedReason: 'failedReason',
  stacktrace: 'stacktrace',
  /** Attempts made. */
  atm: 'atm',
  /** Attempts started. */
  ats: 'ats',
  progress: 'progress',
  /** The worker (`processedBy`) that took it. */
  pb: 'pb',
  /** Deferred failure: a reason the job fails with at its next start, without running. */
  defa: 'defa',
} as const;

export const JOB_HASH_FIELDS = Object.values(JOB_FIELD);

/** The field of a queue's meta hash bounding its events stream (`MAXLEN ~`), which BullMQ's own progress write reads. */
export const EVENTS_MAXLEN_FIELD = 'opts.maxLenEvents';

/** Positions in the argument list the Redis backend's `execCommand('moveToFinished', args)` gets. */
export const MOVE_TO_FINISHED = { finishedSet: 10, jobHash: 11, id: 14, value: 17, target: 18 } as const;

/** BullMQ's longest BZPOPMIN (a Worker's `maximumBlockTimeout`, 10 s) plus the 1 s its watchdog adds. */
export const BULLMQ_MAX_BLOCK_MS = 11_000;

/** The private Worker field holding when its queue's rate limit lets it fetch again (epoch ms; 0: not limited). */
export const WORKER_LIMIT_UNTIL = 'limitUntil';
