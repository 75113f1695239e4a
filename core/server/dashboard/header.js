// @ts-check
// The summary in the page header: host state, jobs, running runs, success rate, queue depths.
import { fill, h } from './dom.js';

/** @import { Stats } from '../../contract/views.js' */
/** @import { Child } from './dom.js' */

const percent = (/** @type {number | null | undefined} */ rate) => (rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)}%`);

/**
 * Renders `GET /stats` into the `<dl>`.
 * @param {Element} dl
 * @param {Stats} stats
 */
export function renderStats(dl, stats) {
  const queues = Object.entries(stats.queues ?? {});
  const item = (/** @type {string} */ label, /** @type {Child} */ value, /** @type {Record<string, string>} */ extra = {}) => [
    h('div', extra, h('dt', {}, label), h('dd', {}, value)),
  ];
  fill(
    dl,
    item('Host', h('span', { class: `state st-${stats.state}` }, stats.state), { 'data-stat': 'state' }),
    item('Jobs', `${stats.jobs.total} total, ${stats.jobs.enabled} enabled`, { 'data-stat': 'jobs' }),
    item('Running', String(stats.totals.running), { 'data-stat': 'running' }),
    item('Queued', `${stats.totals.queued}${stats.totals.delayed ? ` (+${stats.totals.delayed} delayed)` : ''}`, { 'data-stat': 'queued' }),
    item('Success rate', stats.successRate === null ? 'no runs yet' : `${percent(stats.successRate)} of ${stats.totals.succeeded + stats.totals.failed}`, {
      'data-stat': 'success',
    }),
    item('Queues', queues.length === 0 ? '—' : queues.map(([q, n]) => `${q} ${n}`).join(' · '), { 'data-stat': 'queues' }),
  );
}
