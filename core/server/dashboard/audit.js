// @ts-check
// The Audit view (#/audit?token=ci&action=job.*&target=job:deploy-*&outcome=forbidden): the
// records of GET /audit, newest first, with its cursor ("Load more") and its filters. The host
// sends no event when it records a change, so the view reads the trail when it is opened, when a
// filter changes, and on "Refresh".
import { get, withQuery } from './api.js';
import { absolute, badge, fill, h, time } from './dom.js';

/** @import { AuditQuery, AuditRecord } from '../../contract/audit.js' */
/** @import { Page } from '../../contract/run.js' */

const PAGE_SIZE = 50;

/** The outcome as a badge in the colours of a run's status: ok like succeeded, a refusal like failed. */
const OUTCOME = /** @type {const} */ ({ ok: 'succeeded', forbidden: 'failed', error: 'queued' });

/**
 * The filters the view reads from its hash; empty strings are "any".
 * @typedef {{ token: string, action: string, target: string, outcome: string }} AuditFilters
 */

/**
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void, navigate: (hash: string) => void }} options
 */
export function createAudit(root, { onError, navigate }) {
  const tbody = /** @type {HTMLTableSectionElement} */ (root.querySelector('tbody'));
  const more = /** @type {HTMLButtonElement} */ (root.querySelector('[data-more]'));
  const form = /** @type {HTMLFormElement} */ (root.querySelector('#audit-filter'));
  /** @type {AuditQuery} */
  let query = {};
  /** @type {string | undefined} */
  let next;
  /** @type {Promise<unknown> | null} */
  let loading = null;

  /** @param {AuditRecord} r */
  function row(r) {
    return h(
      'tr',
      { 'data-audit': r.id, 'data-action': r.action, 'data-outcome': r.outcome },
      h('th', { scope: 'row', 'data-label': 'At', title: absolute(r.at) }, time(r.at)),
      h('td', { 'data-label': 'Token', 'data-col': 'token' }, r.token),
      h('td', { 'data-label': 'Action', 'data-col': 'action' }, h('code', {}, r.action)),
      h('td', { 'data-label': 'Target', 'data-col': 'target', class: 'mono' }, target(r.target)),
      h('td', { 'data-label': 'IP', 'data-col': 'ip', class: 'mono' }, r.ip),
      h(
        'td',
        { 'data-label': 'Outcome', 'data-col': 'outcome' },
        badge(OUTCOME[r.outcome], r.outcome),
        r.code ? h('span', { class: 'muted small' }, ` ${r.code} (${r.status})`) : null,
      ),
    );
  }

  /**
   * A run or job target links to its page.
   * @param {string} t
   */
  function target(t) {
    const [kind, ...rest] = t.split(':');
    const name = rest.join(':');
    if (kind === 'run' && name) return h('a', { href: `#/runs/${encodeURIComponent(name)}` }, t);
    if (kind === 'job' && name && !name.includes('*')) return h('a', { href: `#/jobs/${encodeURIComponent(name)}` }, t);
    return t;
  }

  /** @param {boolean} append */
  async function load(append) {
    const current = (loading = get(withQuery('/audit', { ...query, limit: PAGE_SIZE, before: append ? next : undefined })));
    try {
      const page = /** @type {Page<AuditRecord>} */ (await current);
      if (current !== loading) return; // a newer load is under way
      next = page.next;
      if (!append) fill(tbody);
      tbody.append(...page.items.map(row));
      if (tbody.childElementCount === 0) fill(tbody, h('tr', {}, h('td', { colspan: 6, class: 'muted', 'data-empty': '' }, 'No audit records match.')));
      more.hidden = !next;
    } catch (err) {
      if (current === loading) onError(err);
    }
  }

  more.addEventListener('click', () => load(true));
  /** @type {HTMLButtonElement} */ (root.querySelector('[data-audit-refresh]')).addEventListener('click', () => load(false));
  // A filter lives in the hash, so a filtered view can be linked to and survives a reload.
  const apply = () => {
    const data = new FormData(form);
    navigate(withQuery('#/audit', Object.fromEntries(['token', 'action', 'target', 'outcome'].map((k) => [k, String(data.get(k) ?? '').trim()]))));
  };
  form.addEventListener('change', apply);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });

  return {
    /**
     * Sets the filters (from the hash) and shows their first page.
     * @param {AuditFilters} filters
     */
    show(filters) {
      for (const [k, v] of Object.entries(filters)) {
        const field = /** @type {HTMLInputElement | HTMLSelectElement | null} */ (form.elements.namedItem(k));
        if (field) field.value = v;
      }
      query = {
        token: filters.token || undefined,
        action: filters.action || undefined,
        target: filters.target || undefined,
        outcome: /** @type {AuditQuery['outcome']} */ (filters.outcome || undefined),
      };
      return load(false);
    },
  };
}
