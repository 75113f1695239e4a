import { EVENTS_MAXLEN_FIELD, JOB_FIELD } from './bullmq-internals.js';

/**
 * Writes an attempt makes outside BullMQ's own scripts while it runs (the success record `once`
 * and `cooldown` read, the run's progress), each checked against the run's BullMQ lock in the
 * script that writes it: the lock holds the token of the host that took the run. A host cut off
 * from Redis whose lock lapsed meanwhile (another host took the run over as stalled) writes
 * nothing when the link returns, whatever its patient connection queued or resends then, just as
 * BullMQ refuses its `moveToFinished`. No lock of jobhost's own: BullMQ's token is the owner.
 */

/** A success, recorded before BullMQ marks the run completed. KEYS: the job's state, the run's lock. ARGV: run id, token. Nil when the lock is not the token's. */
const OWNED_SUCCESS = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'lastSuccessAt', string.format('%.0f', now), 'succeededRun', ARGV[1])
return string.format('%.0f', now)`;

/**
 * BullMQ's updateProgress (the value on the run's hash and a `progress` entry in the queue's
 * events stream), made only while the lock is the token's. KEYS: the run's hash, its lock, the
 * queue's events stream, its meta hash. ARGV: token, run id, progress JSON. Returns 1 when
 * written, 0 when the run is not held with this token (or is gone).
 */
const OWNED_PROGRESS = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local maxEvents = redis.call('HGET', KEYS[4], '${EVENTS_MAXLEN_FIELD}') or 10000
redis.call('HSET', KEYS[1], '${JOB_FIELD.progress}', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxEvents, '*', 'event', 'progress', 'jobId', ARGV[2], 'data', ARGV[3])
return 1`;

/** The scripts, as ioredis commands on a connection. */
export interface OwnedWriteCommands {
  jhOwnedSuccess(state: string, lock: string, runId: string, token: string): Promise<string | null>;
  jhOwnedProgress(jobKey: string, lock: string, events: string, meta: string, token: string, runId: string, progress: string): Promise<number>;
}

export const OWNED_WRITE_SCRIPTS = {
  jhOwnedSuccess: { keys: 2, lua: OWNED_SUCCESS },
  jhOwnedProgress: { keys: 4, lua: OWNED_PROGRESS },
};
