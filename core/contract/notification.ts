/** The outcomes a job may be notified of. */
export type NotifyStatus = 'succeeded' | 'failed' | 'canceled' | 'retrying';
export const PRIORITIES = ['low', 'medium', 'high', 'critical'] as const;
export type NotifyPriority = (typeof PRIORITIES)[number];

/** A notification as stored, served and emitted (SPEC §6). */
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
}
