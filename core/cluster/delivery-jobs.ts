import type { Job, Queue, Worker, WorkerOptions } from 'bullmq';
import type { DeliveryOutcome } from '../contract/attempt.js';
import { isoTime } from '../contract/clock.js';
import { type Delivery, deliveryOpen, incidentOf, type Notification, OPEN_BEFORE_MAX } from '../contract/notification.js';
import { DELIVERY_QUEUE } from './keys.js';
import { bullmq } from './libraries.js';

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
 * `Backend.openBefore`: the notifications of `incident` older than `before` whose delivery to the
 * destination of `queue` is still open, read from every job of that queue (waiting, delayed,
 * active) and their records. Only a resolve asks (see `Deliveries.deliver`), so this reads a
 * destination's backlog once per resolve waiting, not per delivery.
 */
export async function openBefore(
  queue: Queue<DeliveryJobData>,
  read: (id: string) => Promise<Notification | undefined>,
  destination: string,
  before: string,
  incident: string,
): Promise<Notification[]> {
  const jobs = await queue.getJobs(['waiting', 'prioritized', 'delayed', 'active'], 0, -1, true);
  const ids = [...new Set(jobs.flatMap((job) => (job?.data && job.data.n < before ? [job.data.n] : [])))].sort();
  const found: Notification[] = [];
  for (let i = 0; i < ids.length && found.length < OPEN_BEFORE_MAX; i += 100) {
    const read100 = await Promise.all(ids.slice(i, i + 100).map(read));
    for (const n of read100) {
      if (n && incidentOf(n) === incident && n.deliveries.some((d) => d.destination === destination && deliveryOpen(d))) found.push(n);
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
