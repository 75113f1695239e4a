// @ts-check
/**
 * Chaining on the run page (`after`, SPEC §13): the run that triggered this one, and the runs
 * this one's end triggered. A child's id starts with its parent's (`afterRunId`), and ids sort
 * as text, so one page of history below `<id>zzzzzzzzz` holds the children first.
 * @import { Page, Run } from '../../contract/run.js'
 * @import { Child } from './dom.js'
 */
import { get, withQuery } from './api.js';
import { badge, h } from './dom.js';

/** "triggered after <job> run <id>", for a run `after` created; null for any other. @param {Run} r @returns {Child} */
export function afterLink(r) {
  if (!r.after) return null;
  return [
    ' — triggered after ',
    h('a', { href: withQuery('#/runs', { job: r.after.job }) }, r.after.job),
    ' run ',
    h('a', { href: `#/runs/${encodeURIComponent(r.after.runId)}`, class: 'mono', 'data-run-after': '' }, r.after.runId),
  ];
}

/** The runs the end of run `id` triggered (one request). @param {string} id @returns {Promise<Run[]>} */
export async function childrenOf(id) {
  const page = /** @type {Page<Run>} */ (await get(`/runs?before=${encodeURIComponent(`${id}zzzzzzzzz`)}&limit=50`));
  return page.items.filter((r) => r.id !== id && r.id.startsWith(id) && r.after?.runId === id);
}

/** The list of children, or nothing when there are none. @param {Run[]} children @returns {Child} */
export function childList(children) {
  if (children.length === 0) return null;
  return [
    h('h3', {}, 'Triggered after this run'),
    h(
      'ul',
      { 'data-run-children': '' },
      children.map((c) => h('li', {}, h('a', { href: `#/runs/${encodeURIComponent(c.id)}`, class: 'mono' }, c.id), ` ${c.job} `, badge(c.status))),
    ),
  ];
}
