import { glob, matchesAny } from '../contract/glob.js';
import type { Notification } from '../contract/notification.js';
import type { NotificationRoute } from '../contract/notify-config.js';

function matches(route: NotificationRoute, n: Pick<Notification, 'job' | 'tags' | 'priority' | 'status'>): boolean {
  if (route.jobs && !matchesAny(route.jobs, n.job)) return false;
  if (route.tags && !route.tags.some((p) => n.tags.some((tag) => glob(p).test(tag)))) return false;
  if (route.priority && !route.priority.includes(n.priority)) return false;
  if (route.status && !route.status.includes(n.status)) return false;
  return true;
}

/**
 * The destinations a notification goes to, each once, in the order named: the job's `notify.to`,
 * then every route whose fields all match (a field lists alternatives).
 */
export function destinationsFor(
  n: Pick<Notification, 'job' | 'tags' | 'priority' | 'status'>,
  to: readonly string[] | undefined,
  routes: readonly NotificationRoute[],
): string[] {
  const out = new Set<string>(to);
  for (const route of routes) if (matches(route, n)) for (const name of route.to) out.add(name);
  return [...out];
}
