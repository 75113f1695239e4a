// @ts-check
// The destinations of notifications (no secrets), with a test button each, and how many deliveries wait.
import { can } from './access.js';
import { get, post } from './api.js';
import { BODY_SHOWN, describe, errorText } from './delivery-errors.js';
import { badge, fill, h } from './dom.js';

/** @import { DestinationsView, DestinationView, TestResult } from '../../contract/notify-config.js' */

/**
 * Draws the destinations table of the notifications view; answers the function that reads them again.
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void }} options
 */
export function createDestinations(root, { onError }) {
  const destinations = /** @type {HTMLTableSectionElement} */ (root.querySelector('#destinations-table tbody'));
  const open = /** @type {HTMLElement} */ (root.querySelector('[data-open]'));
  /**
   * The last test answer per destination, kept when the destinations are drawn again.
   * @type {Map<string, TestResult | 'sending' | Error>}
   */
  const tests = new Map();
  /** @type {string | null} */
  let shownDestinations = null;

  /** @param {string} name */
  function testResult(name) {
    const r = tests.get(name);
    if (r === undefined) return h('span', { class: 'muted' }, 'not tested');
    if (r === 'sending') return h('span', { class: 'muted' }, 'Sending…');
    if (r instanceof Error) return h('span', { class: 'error-text' }, `Could not test: ${describe(r)}`);
    return h(
      'div',
      { class: 'test-result', 'data-ok': String(r.ok) },
      h(
        'div',
        {},
        badge(r.ok ? 'delivered' : 'dead', r.ok ? 'ok' : 'not ok'),
        r.status !== null ? h('span', { 'data-test-status': '' }, ` ${r.kind === 'email' ? 'SMTP' : 'HTTP'} ${r.status}`) : null,
        h('span', { class: 'muted' }, ` in ${Math.round(r.durationMs)} ms`),
      ),
      // The status is on the line above.
      r.error ? h('div', { 'data-test-error': '' }, errorText(r.error, r.status === null)) : null,
      r.body ? h('pre', { class: 'answer', 'data-test-body': '' }, r.body.length > BODY_SHOWN ? `${r.body.slice(0, BODY_SHOWN)}…` : r.body) : null,
    );
  }

  /**
   * @param {DestinationView} dest
   * @param {HTMLButtonElement} button
   */
  async function sendTest(dest, button) {
    const cell = /** @type {HTMLElement} */ (button.closest('tr')?.querySelector('[data-col="test"]'));
    button.disabled = true;
    tests.set(dest.name, 'sending');
    fill(cell, testResult(dest.name));
    try {
      tests.set(dest.name, /** @type {TestResult} */ (await post(`/notifications/destinations/${encodeURIComponent(dest.name)}/test`, {})));
    } catch (err) {
      tests.set(dest.name, /** @type {Error} */ (err));
    }
    fill(cell, testResult(dest.name));
    button.disabled = false;
  }

  /** @param {DestinationView} dest */
  function destinationRow(dest) {
    return h(
      'tr',
      { 'data-destination': dest.name },
      h('th', { scope: 'row', 'data-label': 'Destination' }, dest.name),
      h('td', { 'data-label': 'Kind', 'data-col': 'kind' }, dest.kind),
      h('td', { 'data-label': 'Target', 'data-col': 'target', class: 'mono' }, dest.target),
      h('td', { 'data-label': 'Last test', 'data-col': 'test', role: 'status' }, testResult(dest.name)),
      h(
        'td',
        { class: 'actions' },
        can('destination.test')
          ? h('button', { type: 'button', 'aria-label': `Send a test to ${dest.name}`, onclick: (e) => sendTest(dest, e.currentTarget) }, 'Send test')
          : null,
      ),
    );
  }

  async function loadDestinations() {
    try {
      const view = /** @type {DestinationsView} */ (await get('/notifications/destinations'));
      open.textContent =
        view.open === 0 ? 'No delivery waiting.' : `${view.open} deliver${view.open === 1 ? 'y' : 'ies'} waiting for an attempt (pending or retrying).`;
      open.dataset.open = String(view.open);
      // Drawn again only when they changed (a config reload): a redraw would drop the focus on a button.
      const key = JSON.stringify([view.items, can('destination.test')]);
      if (key === shownDestinations) return;
      shownDestinations = key;
      for (const name of tests.keys()) if (!view.items.some((d) => d.name === name)) tests.delete(name);
      fill(
        destinations,
        view.items.length
          ? view.items.map(destinationRow)
          : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No destinations: add them under notifications.destinations in the config file.')),
      );
    } catch (err) {
      onError(err);
    }
  }

  return loadDestinations;
}
