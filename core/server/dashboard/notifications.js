// @ts-check
// Notifications, newest first, each with its deliveries (where it went and how that went), and the
// destinations with a test button. New notifications arrive over the WebSocket; a delivery's
// outcome event re-reads the one notification it names. The destinations: destinations.js.
import { can } from './access.js';
import { ApiError, get, post, withQuery } from './api.js';
import { describe, errorText } from './delivery-errors.js';
import { createDestinations } from './destinations.js';
import { absolute, badge, coalescer, fill, h, swap, time } from './dom.js';

/** @import { EventDataMap } from '../../contract/events.js' */
/** @import { Delivery, Notification } from '../../contract/notification.js' */
/** @import { Page } from '../../contract/run.js' */

const dash = () => h('span', { class: 'muted' }, '—');

/**
 * The alert rules worth a label: the plain outcomes (succeeded, failed, ...) say it with their badge.
 * @type {Readonly<Record<string, [string, string]>>}
 */
const RULES = {
  recovered: ['recovered', 'the first success after notified failures'],
  slow: ['slow', 'a run still running past its slowerThan'],
  missed: ['missed', 'a schedule fire that started no run in time'],
  digest: ['digest', 'what storm control held back in one window'],
  host: ['host alert', "the host's own degradation, when it starts and when it ends"],
};

/** @param {Notification['rule']} rule */
function ruleLabel(rule) {
  const r = RULES[rule];
  return r ? [h('span', { class: `rule r-${rule}`, 'data-rule-label': rule, title: r[1] }, r[0]), ' '] : null;
}

const n0 = (/** @type {number} */ n) => Number(n).toLocaleString('en-US');

/**
 * A digest's counts: "9,999 held back: 9,990 failed, 9 retrying", and the window.
 * @param {NonNullable<Notification['held']>} held
 */
function heldLine(held) {
  const statuses = /** @type {Array<[string, number]>} */ (Object.entries(held.statuses ?? {}))
    .filter(([, c]) => c > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([s, c]) => `${n0(c)} ${s}`)
    .join(', ');
  return h(
    'p',
    { class: 'small held', 'data-held': '' },
    h('strong', {}, `${n0(held.count)} held back`),
    statuses ? `: ${statuses}` : null,
    held.from && held.to ? h('span', { class: 'muted' }, ` · from ${absolute(held.from)} to ${absolute(held.to)}`) : null,
  );
}

/**
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void }} options
 */
export function createNotifications(root, { onError }) {
  const list = /** @type {HTMLOListElement} */ (root.querySelector('ol.notes'));
  const more = /** @type {HTMLButtonElement} */ (root.querySelector('[data-more]'));
  const loadDestinations = createDestinations(root, { onError });
  const later = coalescer();
  /**
   * What the last action on a notification said, kept when the notification is drawn again.
   * @type {Map<string, string>}
   */
  const said = new Map();
  /**
   * Notifications with deliveries still waiting are read again now and then: the host sends an
   * event when a delivery is delivered or dead, but none when it only moves to `retrying`.
   * @type {Map<string, { timer: ReturnType<typeof setTimeout>, tries: number }>}
   */
  const watches = new Map();
  /** @type {string | undefined} */
  let next;

  // ------------------------------------------------------------ notifications

  /**
   * @param {Notification} n
   * @param {Delivery} d
   */
  function delivery(n, d) {
    return h(
      'tr',
      { 'data-delivery': d.id, 'data-destination': d.destination, 'data-status': d.status },
      h('th', { scope: 'row', 'data-label': 'Destination' }, d.destination),
      h('td', { 'data-label': 'Status', 'data-col': 'status' }, badge(d.status)),
      h('td', { 'data-label': 'Attempts', 'data-col': 'attempts' }, String(d.attempts)),
      h(
        'td',
        { 'data-label': 'Last error', 'data-col': 'error' },
        // A delivery keeps its last error once delivered (a retry or a redeliver that then worked): history, not a fault.
        d.lastError
          ? d.status === 'delivered'
            ? h('div', { class: 'earlier', 'data-earlier': '' }, 'before: ', errorText(d.lastError))
            : errorText(d.lastError)
          : dash(),
      ),
      h('td', { 'data-label': 'Next attempt', 'data-col': 'next' }, d.status === 'retrying' && d.nextAt ? time(d.nextAt) : dash()),
      h('td', { 'data-label': 'Delivered', 'data-col': 'delivered' }, time(d.deliveredAt)),
      h(
        'td',
        { class: 'actions' },
        can('notification.redeliver', n.job) &&
          h(
            'button',
            {
              type: 'button',
              'data-focus': `redeliver:${d.id}`,
              'aria-label': `Redeliver to ${d.destination}`,
              // A pending delivery is about to be tried anyway.
              disabled: d.status === 'pending',
              onclick: (e) => redeliver(n, d.destination, e.currentTarget),
            },
            'Redeliver',
          ),
      ),
    );
  }

  /** @param {Notification} n */
  function deliveries(n) {
    if (n.deliveries.length === 0)
      // Held back from every destination it was routed to: the line above says so.
      return n.throttled?.length ? null : h('p', { class: 'small muted', 'data-no-deliveries': '' }, 'Sent to no destination.');
    return h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'cards deliveries' },
        h('caption', { class: 'sr-only' }, `Deliveries of ${n.title}`),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Destination', 'Status', 'Attempts', 'Last error', 'Next attempt', 'Delivered'].map((c) => h('th', { scope: 'col' }, c)),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')),
          ),
        ),
        h(
          'tbody',
          {},
          n.deliveries.map((d) => delivery(n, d)),
        ),
      ),
    );
  }

  /** @param {Notification} n */
  function item(n) {
    const isHost = n.rule === 'host';
    return h(
      'li',
      { class: `note p-${n.priority}`, 'data-notification': n.id, 'data-rule': n.rule ?? null },
      h(
        'div',
        { class: 'note-head' },
        h(
          'div',
          {},
          h('span', { class: `prio p-${n.priority}` }, `${n.priority} priority`),
          ' ',
          badge(n.status),
          ' ',
          ruleLabel(n.rule),
          h('strong', {}, n.title),
        ),
        n.deliveries.length > 0 && can('notification.redeliver', n.job)
          ? h(
              'button',
              {
                type: 'button',
                'data-focus': 'redeliver-all',
                'data-redeliver-all': '',
                disabled: n.deliveries.every((d) => d.status === 'pending'),
                onclick: (e) => redeliver(n, undefined, e.currentTarget),
              },
              'Redeliver all',
            )
          : null,
      ),
      h('p', {}, n.message),
      n.held ? heldLine(n.held) : null,
      n.throttled?.length
        ? h(
            'p',
            { class: 'small throttled', 'data-throttled': '' },
            `held back from: ${n.throttled.join(', ')} (storm control)`,
            h('span', { class: 'muted' }, ' · counted into their next digest'),
          )
        : null,
      h(
        'div',
        { class: 'small muted' },
        isHost
          ? h('span', { 'data-host-alert': '' }, 'host ', h('code', {}, n.host ?? '?'), ' · ', h('code', {}, n.condition ?? '?'))
          : n.runId
            ? h('a', { href: `#/runs/${encodeURIComponent(n.runId)}` }, `${n.job} · ${n.runId}`)
            : // A digest or a missed fire is about the job, not one run.
              h('a', { href: `#/jobs/${encodeURIComponent(n.job)}` }, n.job),
        ' · ',
        time(n.at),
        n.tags.length
          ? [
              ' · ',
              h(
                'span',
                { class: 'tags' },
                n.tags.map((t) => h('span', { class: 'tag' }, `#${t}`)),
              ),
            ]
          : null,
      ),
      deliveries(n),
      h('p', { class: 'small said', role: 'status', 'data-said': '' }, said.get(n.id) ?? ''),
    );
  }

  const shown = (/** @type {string} */ id) => list.querySelector(`li[data-notification="${CSS.escape(id)}"]`);

  /**
   * Draws one notification again (or first, at the top), and watches it while deliveries wait.
   * @param {Notification} n
   */
  function show(n, where = 'top') {
    const fresh = { ...n, deliveries: n.deliveries ?? [] };
    const old = shown(fresh.id);
    if (old) swap(old, item(fresh));
    else {
      list.querySelector('[data-empty]')?.remove();
      if (where === 'top') list.prepend(item(fresh));
      else list.append(item(fresh));
    }
    watch(fresh);
  }

  /** @param {string} id */
  function unwatch(id) {
    clearTimeout(watches.get(id)?.timer);
    watches.delete(id);
  }

  /**
   * Pending: read again after 1 s, 2 s, 4 s … (at most 30 s) until it moves. Retrying: read again
   * just after its next attempt is due. Nothing waiting: no timer.
   * @param {Notification} n
   */
  function watch(n) {
    const prev = watches.get(n.id);
    clearTimeout(prev?.timer);
    const waiting = n.deliveries.filter((d) => d.status === 'pending' || d.status === 'retrying');
    if (waiting.length === 0) return void watches.delete(n.id);
    let delay;
    let tries = 0;
    if (waiting.some((d) => d.status === 'pending')) {
      tries = (prev?.tries ?? 0) + 1;
      delay = Math.min(30_000, 1000 * 2 ** Math.min(tries - 1, 5));
    } else {
      const due = Math.min(...waiting.map((d) => (d.nextAt ? Date.parse(d.nextAt) : Date.now())));
      delay = Math.max(1000, due - Date.now() + 1000);
    }
    const timer = setTimeout(() => {
      // Hidden, or gone with a reload: showing the view again reads everything afresh.
      if (root.hidden || !shown(n.id)) return void watches.delete(n.id);
      // The entry stays until the answer is drawn, so the next delay of a pending one grows.
      void refresh(n.id);
    }, delay);
    watches.set(n.id, { timer, tries });
  }

  /** @param {string} id */
  async function refresh(id) {
    try {
      show(/** @type {Notification} */ (await get(`/notifications/${encodeURIComponent(id)}`)));
    } catch (err) {
      if (err instanceof ApiError && err.code === 'NOTIFICATION_NOT_FOUND') {
        unwatch(id);
        shown(id)?.remove();
      } else onError(err);
    }
  }

  /**
   * @param {Notification} n
   * @param {string | undefined} destination
   * @param {HTMLButtonElement} button
   */
  async function redeliver(n, destination, button) {
    button.disabled = true;
    const to = destination ?? 'every destination';
    try {
      const updated = /** @type {Notification} */ (await post(`/notifications/${encodeURIComponent(n.id)}/redeliver`, destination ? { destination } : {}));
      said.set(n.id, `Redelivery to ${to} queued.`);
      show(updated);
      later('open', 300, loadDestinations);
    } catch (err) {
      said.set(n.id, `Could not redeliver to ${to}: ${describe(err)}`);
      const out = shown(n.id)?.querySelector('[data-said]');
      if (out) out.textContent = said.get(n.id) ?? '';
      button.disabled = false;
    }
  }

  /** @param {boolean} append */
  async function load(append) {
    try {
      const page = /** @type {Page<Notification>} */ (await get(withQuery('/notifications', { limit: 50, before: append ? next : undefined })));
      next = page.next;
      if (!append) {
        for (const id of [...watches.keys()]) unwatch(id);
        said.clear();
        fill(list);
      }
      for (const n of page.items) show(n, 'bottom');
      if (list.childElementCount === 0) fill(list, h('li', { class: 'muted', 'data-empty': '' }, 'No notifications yet.'));
      more.hidden = !next;
    } catch (err) {
      onError(err);
    }
  }

  more.addEventListener('click', () => load(true));

  return {
    reload: () => Promise.all([load(false), loadDestinations()]),
    /**
     * A `notification` event: its data is the notification, its deliveries pending.
     * @param {EventDataMap['notification']} data
     */
    add(data) {
      show({ ...data, at: data.at ?? new Date().toISOString() });
      if (!root.hidden) later('open', 300, loadDestinations);
    },
    /**
     * A `notification.delivered` or `notification.failed` event: that notification is read again.
     * @param {EventDataMap['notification.delivered' | 'notification.failed']} data
     */
    changed(data) {
      if (root.hidden) return;
      if (shown(data.id)) later(`note:${data.id}`, 100, () => refresh(data.id));
      later('open', 300, loadDestinations);
    },
  };
}
