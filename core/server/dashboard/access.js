// @ts-check
// Who the page's token is (GET /whoami) and what it may do (SPEC §14: the dashboard hides what a
// token may not do). Every button that changes something asks `can()` before it is drawn, and is
// left out when the answer is no: a viewer sees no button that would be refused, not buttons that
// fail. The host says which actions the token may ask (`actions` of GET /whoami, from its one table
// of routes and roles, core/server/route-roles.ts), so this module keeps no copy of that table.
//
// How a button uses it (`action` is the audit action of the route the button calls):
//
//   can('job.run', job.name) ? h('button', …, 'Run…') : null     // acts on one job
//   can('run.cancel', run.job)                                    // on a run: its job
//   can('notification.redeliver', n.job)                          // on a notification: its job
//   can('runs.retry')                                             // on no one job: a bulk action
//                                                                 //   over every job (the host
//                                                                 //   keeps to the token's jobs)
//   can('queue.pause')                                            // on a queue: GET /whoami leaves
//                                                                 //   it out for a token limited
//                                                                 //   by `jobs` (the host refuses it)
//
// A new route's button needs nothing here: Pause/Resume on a job is can('job.pause', name) /
// can('job.resume', name) once the route is in route-roles.ts. An operator limited by `jobs`
// globs gets no button for another job. Until GET /whoami has answered, can() says no; the page
// draws its views again once it has (at load, after the token prompt, after a config edit).
import { get } from './api.js';

/** @import { WhoAmI } from '../../contract/access.js' */

/** @type {WhoAmI | null} */
let me = null;

/** Reads GET /whoami (again) and keeps it for `can()`; rejects like any request (a 401 asks for the token). */
export async function loadWhoami() {
  me = /** @type {WhoAmI} */ (await get('/whoami'));
  return me;
}

/**
 * A `*` glob as a regex, as the host reads `jobs` (core/contract/glob.ts): `*` matches any run of
 * characters, everything else is literal.
 * @param {string} pattern
 */
const glob = (pattern) =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );

/**
 * True when the token may ask `action` (an audit action: `job.run`, `run.cancel`, ...) of `job`;
 * without `job`, whether its role may ask it at all.
 * @param {string} action
 * @param {string | null} [job]
 */
export function can(action, job) {
  if (!me?.actions.includes(action)) return false;
  return job === undefined || job === null || me.jobs === null || me.jobs.some((p) => glob(p).test(job));
}

/**
 * What a token may do, in a sentence: what the token prompt says after it took one.
 * @param {WhoAmI} who
 */
export function describeWho(who) {
  const token = who.name === 'anonymous' ? 'no token' : `token “${who.name}”`;
  const may =
    who.role === 'viewer'
      ? 'read-only: the page shows nothing that changes the host'
      : who.role === 'operator'
        ? `may run, cancel and retry runs, enable and disable jobs, redeliver notifications${who.jobs ? ` — of jobs ${who.jobs.join(', ')} only` : ''}`
        : 'may do everything, including what changes the host itself';
  return `Signed in with ${token}, role ${who.role}: ${may}.`;
}

/**
 * The header's line: whose token the page uses and its role (nothing on a host without tokens).
 * @param {HTMLElement} el
 * @param {WhoAmI} who
 */
export function showWho(el, who) {
  el.hidden = who.name === 'anonymous';
  el.textContent = `${who.name} · ${who.role}${who.jobs ? ` (jobs ${who.jobs.join(', ')})` : ''}`;
  el.dataset.role = who.role;
}
