import { z } from 'zod';

/**
 * What a notification is about: a run's outcome (`failed` after its last attempt, `retrying`
 * after one that is retried), or an alert rule (SPEC §12): `recovered` (the first success after
 * a notified failure), `slow` (still running past `slowerThan`), `missed` (a schedule fire that
 * started no run in time). Host alerts use `failed` when a degradation starts, `recovered` when it ends.
 */
export const NOTIFY_STATUSES = ['succeeded', 'failed', 'canceled', 'retrying', 'recovered', 'slow', 'missed'] as const;
export type NotifyStatus = (typeof NOTIFY_STATUSES)[number];
/** Which rule sent a notification: a `notify.on` entry, a digest of what storm control held back, or a host alert. */
export type NotifyRule = NotifyStatus | 'digest' | 'host';
export const PRIORITIES = ['low', 'medium', 'high', 'critical'] as const;
export type NotifyPriority = (typeof PRIORITIES)[number];

/** Where one delivery stands (SPEC §12). `pending`: not tried yet; `retrying`: tried, tried again at `nextAt`. */
export const DELIVERY_STATUSES = ['pending', 'delivered', 'retrying', 'dead'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Why the last attempt of a delivery failed: a stable code, a message without secrets, the receiver's HTTP status if any. */
export interface DeliveryError {
  code: string;
  message: string;
  status?: number;
}

/**
 * The fields of a delivery and of a notification that every reader of a record checks (the store's
 * journal, the Redis records, the HTTP answers), once: each reader spreads them into its own
 * shape (strict or loose, with its own descriptions and formats).
 */
export const deliveryErrorFields = { code: z.string(), message: z.string(), status: z.number().optional() };
export const deliveryFields = {
  id: z.string(),
  destination: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number(),
  lastError: z.object(deliveryErrorFields).nullable(),
  deliveredAt: z.string().nullable(),
  nextAt: z.string().nullable(),
};
export const notificationFields = {
  id: z.string(),
  job: z.string(),
  runId: z.string(),
  status: z.string(),
  title: z.string(),
  message: z.string(),
  priority: z.string(),
  tags: z.array(z.string()),
  at: z.string(),
};

/** A notification on its way to one destination; one id (the `webhook-id`) over all its attempts. */
export interface Delivery {
  id: string;
  destination: string;
  status: DeliveryStatus;
  /** Attempts made in the current series (a redeliver starts a new series). */
  attempts: number;
  lastError: DeliveryError | null;
  deliveredAt: string | null;
  /** When the next attempt is due (pending, retrying); null once delivered or dead. */
  nextAt: string | null;
}

/** A notification as stored, served and emitted (SPEC §6, §12). */
export interface Notification {
  id: string;
  job: string;
  runId: string;
  status: NotifyStatus;
  title: string;
  message: string;
  priority: NotifyPriority;
  tags: string[];
  at: string;
  /** Which rule sent it. */
  rule: NotifyRule;
  /** One per destination it was routed to (empty when none). */
  deliveries: Delivery[];
  /** Destinations storm control held it back from (counted into their next digest). */
  throttled?: string[];
  /** A digest: how many notifications were held back in the window, by status, and the window. */
  held?: { count: number; statuses: Partial<Record<NotifyStatus, number>>; from: string; to: string };
  /** A host alert: the host, and the degradation (`store-not-writable`, `backend-unavailable`, ...). */
  host?: string;
  condition?: string;
}

/** The statuses that open (or add to) an incident: a PagerDuty `trigger`; the others resolve it. */
const OPENING: ReadonlySet<string> = new Set(['failed', 'retrying', 'canceled', 'slow', 'missed']);

/** Whether a notification opens (or adds to) its incident, a PagerDuty `trigger`; the others resolve it. */
export function opensIncident(n: Pick<Notification, 'status'>): boolean {
  return OPENING.has(n.status);
}

/** The incident a notification opens or resolves (PagerDuty's `dedup_key`): its job, or a host alert's `<host>:<condition>`. */
export function incidentOf(n: Pick<Notification, 'job' | 'host' | 'condition'>): string {
  return n.condition ? `${n.host}:${n.condition}` : n.job;
}

/** What `Backend.openBefore` answers at most. */
export const OPEN_BEFORE_MAX = 200;

/** Whether a delivery still has attempts to make. */
export function deliveryOpen(d: Delivery): boolean {
  return d.status === 'pending' || d.status === 'retrying';
}

/** A destination's name in `notifications.destinations` (and in `notify.to`, routes, `host.to`). */
export const DESTINATION_NAME = /^[A-Za-z0-9][\w.-]{0,63}$/;
