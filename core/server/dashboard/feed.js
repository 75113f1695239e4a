// @ts-check
// The live event feed: every event from the WebSocket, newest first, filterable by job and type.
import { absolute, fill, h } from './dom.js';

/** @import { AnyHostEvent } from '../../contract/events.js' */

const KEEP = 500;
const SHOWN = 150;

/**
 * One line of words for an event's data.
 * @param {AnyHostEvent} e
 */
export function summary(e) {
  // Destructured together, `data` narrows with each `case` of `type`.
  const { type, data: d } = e;
  switch (type) {
    case 'run.queued':
      return `${d.runId} queued (${d.source})${d.delayed ? ` for ${absolute(d.runAt)}` : ''}`;
    case 'run.started':
      return `${d.runId} started, attempt ${d.attempt}`;
    case 'run.progress':
      return `${d.runId} ${Math.round(d.fraction * 100)}%${d.text ? ` ${d.text}` : ''}`;
    case 'run.retrying':
      return `${d.runId} attempt ${d.attempt} failed (${d.error?.code}); retry in ${Math.round(d.delayMs / 1000)}s`;
    case 'run.succeeded':
      return `${d.runId} succeeded in ${d.durationMs}ms`;
    case 'run.failed':
      return `${d.runId} failed: ${d.error?.code} ${d.error?.message ?? ''}`;
    case 'run.canceled':
      return `${d.runId}: ${d.reason}`;
    case 'run.skipped':
      return `skipped: ${d.reason}${d.detail ? ` (${d.detail})` : ''}`;
    case 'notification':
      return `[${d.priority}] ${d.title}`;
    case 'notification.delivered':
      return `${d.destination}: delivered (attempt ${d.attempts})`;
    case 'notification.failed':
      return `${d.destination}: dead after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'} (${d.error?.code}${d.error?.status ? ` HTTP ${d.error.status}` : ''})`;
    case 'job.registered':
    case 'job.updated':
    case 'job.removed':
      return `${d.file ?? 'registered in code'}${'changed' in d && d.changed?.length ? `: ${d.changed.join(', ')}` : ''}`;
    case 'plugin.error':
      return `${d.file}: ${d.code} ${d.message}`;
    case 'config.reloaded':
      return `changed: ${(d.changed ?? []).join(', ') || 'nothing'}`;
    case 'config.error':
      return `${d.code}${d.path ? ` at ${d.path}` : ''}: ${d.message}`;
    case 'host.stopping':
    case 'host.stopped':
      return d.reason ?? '';
    case 'host.started':
      return `${d.jobs} jobs`;
    case 'events.gap':
      return `${d.lost ?? 'some'} entries of other hosts' events lost: reloaded`;
    default:
      return '';
  }
}

const tone = (/** @type {string} */ type) =>
  type === 'run.failed' || type === 'notification.failed' || type.endsWith('.error')
    ? 'bad'
    : type === 'run.succeeded' || type === 'notification.delivered'
      ? 'good'
      : type === 'run.skipped' || type === 'run.retrying' || type === 'run.canceled' || type === 'events.gap'
        ? 'warn'
        : '';

/**
 * The type filter: a value is an exact type, a `prefix.*`, `all`, or `all-but-progress`.
 * @param {string} filter
 * @param {string} type
 */
function matchesType(filter, type) {
  if (filter === 'all') return true;
  if (filter === 'all-but-progress') return type !== 'run.progress';
  if (filter.endsWith('.*')) return type.startsWith(filter.slice(0, -1));
  return type === filter;
}

/** @param {HTMLElement} root */
export function createFeed(root) {
  const list = /** @type {HTMLOListElement} */ (root.querySelector('ol'));
  const jobSelect = /** @type {HTMLSelectElement} */ (root.querySelector('select[name=job]'));
  const typeSelect = /** @type {HTMLSelectElement} */ (root.querySelector('select[name=type]'));
  const count = /** @type {HTMLElement} */ (root.querySelector('[data-feed-count]'));
  /** @type {AnyHostEvent[]} */
  const events = [];

  const matches = (/** @type {AnyHostEvent} */ e) => (!jobSelect.value || e.data?.job === jobSelect.value) && matchesType(typeSelect.value, e.type);

  /** @param {AnyHostEvent} e */
  function item(e) {
    return h(
      'li',
      { class: `ev ${tone(e.type)}`, 'data-type': e.type, 'data-seq': e.seq },
      h('time', { datetime: e.at, title: absolute(e.at) }, absolute(e.at).slice(11)),
      h(
        'div',
        { class: 'ev-head' },
        h('span', { class: 'ev-type' }, e.type),
        e.data?.job ? [' · ', h('a', { href: `#/runs?job=${encodeURIComponent(e.data.job)}` }, e.data.job)] : null,
        // Another host's event (cluster mode): which one.
        e.data?.host ? h('span', { class: 'muted small', 'data-ev-host': '' }, ` on ${e.data.host}`) : null,
      ),
      'runId' in e.data && e.data.runId && e.type.startsWith('run.')
        ? h('a', { class: 'ev-text', href: `#/runs/${encodeURIComponent(e.data.runId)}` }, summary(e))
        : h('span', { class: 'ev-text' }, summary(e)),
    );
  }

  function render() {
    const shown = events.filter(matches).slice(-SHOWN).reverse();
    fill(list, shown.map(item));
    count.textContent = `${shown.length} shown of ${events.length} received`;
  }

  jobSelect.addEventListener('change', render);
  typeSelect.addEventListener('change', render);

  return {
    /** @param {AnyHostEvent} e */
    add(e) {
      events.push(e);
      if (events.length > KEEP) events.splice(0, events.length - KEEP);
      if (!matches(e)) {
        count.textContent = `${list.childElementCount} shown of ${events.length} received`;
        return;
      }
      list.prepend(item(e));
      while (list.childElementCount > SHOWN) list.lastElementChild?.remove();
      count.textContent = `${list.childElementCount} shown of ${events.length} received`;
    },
    /**
     * Keeps the job filter's options in step with the jobs.
     * @param {readonly string[]} names
     */
    setJobs(names) {
      const current = jobSelect.value;
      fill(
        jobSelect,
        h('option', { value: '' }, 'All jobs'),
        names.map((n) => h('option', { value: n }, n)),
      );
      jobSelect.value = names.includes(current) ? current : '';
    },
  };
}
