// @ts-check
// A job's alert state as GET /jobs gives it (`alert: { failStreak, open, lastRecoveredStreak,
// missedThrough }`), in words, for the jobs list and the job page.
import { badge, h } from './dom.js';

/** @import { JobView } from '../../contract/views.js' */
/** @import { Notification } from '../../contract/notification.js' */

/** The part of a job's `notify` (its config, as `GET /jobs` shows it) that the words here read. */
/** @typedef {{ customMessage?: unknown, after?: unknown } | null | undefined} NotifyShown */

const plural = (/** @type {number} */ n, /** @type {string} */ one, /** @type {string} */ many) => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/**
 * `in alert · 3 failed in a row` while a notified failure streak is open; null otherwise.
 * @param {JobView} job
 */
export function alertBadge(job) {
  const a = job.alert;
  if (!a?.open) return null;
  return h(
    'span',
    { class: 'in-alert', 'data-alert': '', title: 'Its failures were notified and no run has succeeded since.' },
    badge('alert', `in alert · ${a.failStreak.toLocaleString('en-US')} failed in a row`),
  );
}

/**
 * How many failed runs a `recovered` notification ended, or null when nothing the API gives says so.
 * @param {JobView} job
 * @param {Pick<Notification, 'message' | 'runId'>} n
 */
export function recoveredStreak(job, n) {
  const notify = /** @type {NotifyShown} */ (job.notify);
  // The default sentence says it ("... succeeded after 3 failed runs: ..."); a custom message may not.
  const m = notify?.customMessage ? null : /succeeded after (\d+) failed runs?\b/.exec(n.message ?? '');
  if (m) return Number(m[1]);
  const a = job.alert;
  const after = typeof notify?.after === 'number' ? notify.after : 1;
  // The last success ended a streak long enough to be notified, and it is this notification's run.
  if (a && a.lastRecoveredStreak >= after && job.lastRun?.runId === n.runId) return a.lastRecoveredStreak;
  return null;
}

export const failures = (/** @type {number} */ n) => plural(n, 'failure', 'failures');
