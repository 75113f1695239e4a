/** The outcomes a job may be notified of. */
export type NotifyStatus = 'succeeded' | 'failed' | 'canceled' | 'retrying';
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
  /** One per destination it was routed to (empty when none). */
  deliveries: Delivery[];
}

/** Whether a delivery still has attempts to make. */
export function deliveryOpen(d: Delivery): boolean {
  return d.status === 'pending' || d.status === 'retrying';
}

/** A destination's name in `notifications.destinations` (and in `notify.to`, routes, `host.to`). */
export const DESTINATION_NAME = /^[A-Za-z0-9][\w.-]{0,63}$/;
