/**
 * What jobhost relies on of BullMQ beyond its public API, in one place. jobhost pins BullMQ to
 * its 6.7 minor; an upgrade that changes any item here fails
 * test/core/cluster/bullmq-internals.test.ts (one test per item, against a real redis-server)
 * rather than a run somewhere in production. Where each is used:
 *
 * - job-queues.ts (`ManualWorker`) and deliveries.ts override or call protected Worker members
 *   (WORKER_PROTECTED) and wrap the Redis backend's `execCommand` to fold a run's end into its
 *   job's state in the same MULTI as `moveToFinished` (MOVE_TO_FINISHED: its argument positions);
 * - scripts.ts's Lua reads BullMQ's keys (`<prefix>:<job>:<suffix>`, QUEUE_KEYS, and the
 *   `count` field of METRICS_KEYS) and fields of its job hashes (`<prefix>:<job>:<id>`,
 *   JOB_HASH_FIELDS); admission reads the deduplication key (`<prefix>:<job>:de:<id>`);
 * - connections.ts sizes the blocking connections' socket timeout by BULLMQ_MAX_BLOCK_MS;
 * - limits-rate.ts reads when a rate-limited worker may fetch again (WORKER_LIMIT_UNTIL).
 */

/** The BullMQ minor these facts were checked against (package.json pins `~6.7.0`). */
export const BULLMQ_MINOR = '6.7';

/** Protected members of `Worker` that jobhost's workers override or call. */
export const WORKER_PROTECTED = ['createBackend', 'backendFactory', 'lockManager'] as const;

/** Key suffixes of a BullMQ queue that jobhost's Lua reads. */
export const QUEUE_KEYS = ['wait', 'paused', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'events', 'de'] as const;

/** The metrics keys (Worker option `metrics`) whose `count` field gives a job's all-time outcomes. */
export const METRICS_KEYS = ['metrics:completed', 'metrics:failed'] as const;

/** Fields of a job hash jobhost's Lua reads (a run's record is its BullMQ job). */
export const JOB_HASH_FIELDS = ['data', 'opts', 'timestamp', 'processedOn', 'finishedOn', 'returnvalue', 'failedReason', 'atm', 'stacktrace'] as const;

/** Positions in the argument list the Redis backend's `execCommand('moveToFinished', args)` gets. */
export const MOVE_TO_FINISHED = { finishedSet: 10, jobHash: 11, id: 14, value: 17, target: 18 } as const;

/** BullMQ's longest BZPOPMIN (a Worker's `maximumBlockTimeout`, 10 s) plus the 1 s its watchdog adds. */
export const BULLMQ_MAX_BLOCK_MS = 11_000;

/** The private Worker field holding when its queue's rate limit lets it fetch again (epoch ms; 0: not limited). */
export const WORKER_LIMIT_UNTIL = 'limitUntil';
