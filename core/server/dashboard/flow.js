// @ts-check
import { get } from './api.js';
import { badge } from './dom.js';

/** @import { Run } from '../../contract/run.js' */
/** @import { JobView } from '../../contract/views.js' */

/** Per job, the host's last answer: does its rateLimit hold waiting runs back now (SPEC §13)? */
const held = new Map();

/**
 * "rate limited" beside a run that waits to start while its job's rateLimit holds runs back
 * (`GET /jobs/:name` → `rateLimit.waiting`). Shows the last answer and asks again; `changed`
 * is called when the answer moves (the caller draws again).
 * @param {Run} r
 * @param {() => void} changed
 */
export function rateLimitedNote(r, changed) {
  if (r.status !== 'queued' || Date.parse(r.runAt) > Date.now()) return null;
  const before = held.get(r.job) === true;
  get(`/jobs/${encodeURIComponent(r.job)}`)
    .then((answer) => {
      const job = /** @type {JobView} */ (answer);
      const now = (job.rateLimit?.waiting ?? 0) > 0;
      held.set(r.job, now);
      if (now !== before) changed();
    })
    .catch(() => undefined);
  return before ? [' ', badge('queued', 'rate limited')] : null;
}
