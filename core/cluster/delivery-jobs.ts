import type { Job, Queue, Worker, WorkerOptions } from 'bullmq';
import type { DeliveryOutcome } from '../contract/attempt.js';
import { isoTime } from '../contract/clock.js';
import { type Delivery, deliveryOpen, incidentOf, type Notification, OPEN_BEFORE_MAX, opensIncident } from '../contract/notification.js';
import { DELIVERY_QUEUE } from './keys.js';
import { bullmq } from './libraries.js';
import type { NotificationRecords } from './notification-records.js';

/**
 * A delivery as a BullMQ job (see `deliveries.ts`): its data, id and queue, the worker that runs
 * it, how an attempt's outcome leaves the delivery, and the error that asks BullMQ for a retry.
 */

/** What a delivery's BullMQ job carries: the notification, the delivery and the series it belongs to. */
export interface DeliveryJobData {
  n: string;
  d: string;
  s: string;
}

/** An attempt failed and is to be made again after `delayMs` (0: at once, by any host). */
export class RetryLater extends Error {
  readonly delayMs: number;

  constructor(delayMs: number, message: string) {
    super(message);
    this.name = 'RetryLater';
    this.delayMs = delayMs;
    // BullMQ keeps the stack in the job's stacktrace: the message says enough.
    this.stack = message;
  }
}

/** The queue of the deliveries to `destination` (a name of letters, digits, `_ . -`: BullMQ refuses `:`). */
export function destinationQueue(destination: string): string {
  return `${DELIVERY_QUEUE}.${destination}`;
}

/** A delivery's BullMQ job id: BullMQ refuses `:` in ids. */
export function jobId(deliveryId: string, series: string): string {
  return `${deliveryId.replaceAll(':', '_')}.${series}`;
}

/** A delivery as an outcome leaves it, after attempt `attempt`. */
export function afterAttempt(d: Delivery, outcome: Exclude<DeliveryOutcome, { status: 'waiting' }>, attempt: number, now: number): Delivery {
  if (outcome.status === 'delivered') return { ...d, status: 'delivered', attempts: attempt, deliveredAt: isoTime(now), nextAt: null };
  if (outcome.status === 'retrying')
    return { ...d, status: 'retrying', attempts: attempt, lastError: outcome.error, nextAt: isoTime(now + Math.max(0, outcome.delayMs)) };
  return { ...d, status: 'dead', attempts: attempt, lastError: outcome.error, nextAt: null };
}

/**
 * `Backend.openBefore`: the notifications of `incident` of the kind asked for older than `before`
 * whose delivery to the destination of `queue` is still open. The queue's job ids (waiting,
 * delayed, active) name their notifications (`msg_<id>_<n>.<series>`); each older one's job name
 * is read (one field), and only those of the incident are read whole. An ordered destination's
 * delivery asks at each attempt and each look again.
 */
export async function openBefore(
  queue: Queue<DeliveryJobData>,
  records: Pick<NotificationRecords, 'jobsOf' | 'get'>,
  destination: string,
  before: string,
  incident: string,
  opens?: boolean,
): Promise<Notification[]> {
  const jobIds = await queue.getRanges(['waiting', 'prioritized', 'delayed', 'active'], 0, -1, true);
  const ids = [...new Set(jobIds.flatMap((id) => /^msg_(.+)_\d+\.[^.]+$/.exec(id)?.[1] ?? []))].filter((id) => id < before).sort();
  const jobs = await records.jobsOf(ids);
  // A host alert's incident is `<host>:<condition>` and its job is '': read whole to tell.
  const candidates = ids.filter((_, i) => jobs[i] === incident || (jobs[i] === '' && incident.includes(':')));
  const found: Notification[] = [];
  for (let i = 0; i < candidates.length && found.length < OPEN_BEFORE_MAX; i += 100) {
    const read = await Promise.all(candidates.slice(i, i + 100).map((id) => records.get(id)));
    for (const r of read) {
      const n = r?.notification;
      if (
        n &&
        incidentOf(n) === incident &&
        (opens === undefined || opensIncident(n) === opens) &&
        n.deliveries.some((d) => d.destination === destination && deliveryOpen(d))
      )
        found.push(n);
    }
  }
  return found.slice(0, OPEN_BEFORE_MAX);
}

/**
 * BullMQ's Worker, able to stop its timers when its close cannot finish: a graceful close waits
 * for the jobs in flight to be handed back, which never happens while Redis is out of reach, and
 * until then its lock renewal re-arms for ever. Relies on BullMQ's `lockManager` (protected,
 * pinned to the 6.7 minor, as `job-queues.ts`'s worker does).
 */
export function deliveryWorkerClass(): new (
  name: string,
  processor: (job: Job<DeliveryJobData>, token?: string) => Promise<void>,
  opts: WorkerOptions,
) => DeliveryWorker {
  // Defined on first use, once the backend has loaded BullMQ (`libraries.ts`).
  deliveryWorker ??= class extends bullmq().Worker<DeliveryJobData> {
    halt(): void {
      void this.lockManager.close();
      void this.pause(true).catch(() => undefined);
    }
  };
  return deliveryWorker;
}

export type DeliveryWorker = Worker<DeliveryJobData> & {
  /** Stops lock renewal and the stalled check (no Redis needed); the jobs' locks then lapse for another host. */
  halt(): void;
};

let deliveryWorker:
  | (new (
      name: string,
      processor: (job: Job<DeliveryJobData>, token?: string) => Promise<void>,
      opts: WorkerOptions,
    ) => DeliveryWorker)
  | undefined;
