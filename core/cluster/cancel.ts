import type { Queue } from 'bullmq';
import { isoTime } from '../contract/clock.js';
import { HostError } from '../contract/errors.js';
import { isFinal, type Run } from '../contract/run.js';
import type { Connections } from './connections.js';
import type { History } from './history.js';
import { CANCELED_REASON, type ClusterKeys } from './keys.js';
import { replicated } from './replication.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Cancel from any host. A waiting run (queued, delayed, waiting for a retry) is removed from its
 * BullMQ queue, its final record kept as a tombstone written first (BullMQ keeps nothing of a
 * removed job). A started run is marked with BullMQ's deferred failure (whoever starts it next
 * fails it without running the handler: a takeover after a crash included) and a cancel request
 * goes out on the cluster stream; the host running it aborts the attempt's signal, and BullMQ
 * ends the run failed with the canceled reason, shown as `canceled`.
 *
 * The answer is the `Backend` contract's, as on one host: `canceled: true` comes with the run's
 * end `canceled` in Redis, never with a run still running. A host that does not end its run
 * within `waitMs` (it died, or is cut off from Redis) leaves the cancel recorded but not done:
 * that is CANCEL_PENDING, not a success.
 */

export interface CancelContext {
  producer: ScriptedRedis;
  keys: ClusterKeys;
  connections: Connections;
  history: History;
  hostId: string;
  /** The queue of a job (loaded here or not). */
  queue(job: string): Queue;
  /** How long a tombstone is kept (ms). */
  keepMs: number;
  /** How long to wait for a running run to end once its cancel is requested (then CANCEL_PENDING). */
  waitMs: number;
  /** A waiting run this host canceled: the engine hears it ended. */
  canceledWaiting(run: Run): void;
}

export type CancelResult = { canceled: boolean; run: Run } | undefined;

/** `waitingOnly`: a run that is running (or started meanwhile) is left alone (`canceled: false`). */
export async function cancelRun(c: CancelContext, id: string, reason: string, waitingOnly = false): Promise<CancelResult> {
  return c.connections.call(() => cancel(c, id, reason, waitingOnly));
}

async function cancel(c: CancelContext, id: string, reason: string, waitingOnly: boolean): Promise<CancelResult> {
  const run = await c.history.getRun(id);
  if (!run) return undefined;
  if (isFinal(run.status) || (waitingOnly && run.status === 'running')) return { canceled: false, run };
  if (run.status === 'queued') {
    const ended = await removeWaiting(c, run, reason);
    if (ended) return { canceled: true, run: ended };
    // A host took it meanwhile (BullMQ refuses to remove a locked job): cancel it as running.
    if (waitingOnly) {
      const now = await c.history.getRun(id);
      return now ? { canceled: false, run: now } : undefined;
    }
  }
  const marked = await c.producer.jhMarkCanceled(c.keys.queue(run.job, id), CANCELED_REASON);
  if (marked !== 1) {
    const now = await c.history.getRun(id);
    return now ? { canceled: false, run: now } : undefined;
  }
  await c.producer.xadd(
    c.keys.clusterStream,
    'MAXLEN',
    '~',
    String(c.keys.streamLength),
    '*',
    'event',
    'cancel.request',
    'host',
    c.hostId,
    'job',
    run.job,
    'runId',
    id,
    'reason',
    reason,
  );
  await replicated(c.connections, c.producer);
  return waitForEnd(c, id, reason);
}

/** Removes a waiting run from its queue, keeping it as canceled; undefined when a host holds it (it is not waiting). */
async function removeWaiting(c: CancelContext, run: Run, reason: string): Promise<Run | undefined> {
  const id = run.id;
  const now = Date.now();
  // A run waiting for a retry has started: its duration runs from its first start, as on one host.
  const durationMs = run.startedAt === null ? null : Math.max(0, now - Date.parse(run.startedAt));
  const ended: Run = { ...run, status: 'canceled', endedAt: isoTime(now), durationMs, result: null, error: { code: 'CANCELED', message: reason } };
  // The tombstone first: a crash between the two leaves a run that history still shows (the
  // job hash wins while it exists), never one that vanished.
  await c.producer.set(c.keys.tomb(id), JSON.stringify(ended), 'PX', c.keepMs);
  const removed = await c.queue(run.job).remove(id);
  if (removed !== 1) {
    await c.producer.del(c.keys.tomb(id));
    return undefined;
  }
  const state = c.keys.jobState(run.job);
  await c.producer.multi().hincrby(state, 'canceled', 1).hset(state, 'lastCanceledRun', id, 'lastCanceledAt', String(now)).exec();
  // Acknowledged (canceled: true) once the replicas have the removal.
  await replicated(c.connections, c.producer);
  c.canceledWaiting(ended);
  return ended;
}

/**
 * Polls the run until it has ended (the host running it aborts within milliseconds), for at most
 * `waitMs`. A run its dead host's lock handed back to waiting (BullMQ's stalled check) is removed
 * like any waiting run; one still held past the bound is CANCEL_PENDING.
 */
async function waitForEnd(c: CancelContext, id: string, reason: string): Promise<CancelResult> {
  const deadline = Date.now() + c.waitMs;
  let pause = 10;
  for (;;) {
    const run = await c.history.getRun(id);
    if (!run) return undefined;
    if (isFinal(run.status)) return { canceled: run.status === 'canceled', run };
    if (run.status === 'queued') {
      const ended = await removeWaiting(c, run, reason);
      if (ended) return { canceled: true, run: ended };
    }
    if (Date.now() >= deadline) {
      throw new HostError(
        'CANCEL_PENDING',
        `run ${id} is marked canceled, but its host${run.host ? ` (${run.host})` : ''} did not end it within ${c.waitMs} ms; it ends canceled, without running again, once another host takes it over`,
        { runId: id, host: run.host },
      );
    }
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 200);
  }
}
