// @ts-check
// Hosts: the hosts sharing this host's backend (GET /cluster), their heartbeats and running
// runs, and the jobs whose definition differs between them (drift). One host on the local backend.
import { get } from './api.js';
import { fill, h, time } from './dom.js';

/** @import { ClusterHost, ClusterView } from '../../contract/views.js' */

/**
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void }} options
 */
export function createHosts(root, { onError }) {
  const tbody = /** @type {HTMLTableSectionElement} */ (root.querySelector('tbody'));
  const summary = /** @type {HTMLElement} */ (root.querySelector('[data-hosts-summary]'));
  const drift = /** @type {HTMLElement} */ (root.querySelector('[data-drift]'));

  /**
   * @param {ClusterHost} host
   * @param {string} self
   */
  function row(host, self) {
    const versions = host.jobs.map((j) => `${j.name} ${j.version}`).join(', ');
    return h(
      'tr',
      { 'data-host': host.id },
      h('th', { scope: 'row', 'data-label': 'Host' }, host.id, host.id === self ? h('span', { class: 'muted small' }, ' (this one)') : null),
      h('td', { 'data-label': 'API' }, host.url ? h('a', { href: host.url, class: 'mono' }, host.url) : h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Started' }, time(host.startedAt)),
      h('td', { 'data-label': 'Last seen', 'data-col': 'seen' }, time(host.lastSeen)),
      h('td', { 'data-label': 'Running', 'data-col': 'running' }, String(host.running)),
      h('td', { 'data-label': 'Jobs', 'data-col': 'jobs', title: versions }, String(host.jobs.length)),
    );
  }

  async function load() {
    try {
      const view = /** @type {ClusterView} */ (await get('/cluster'));
      fill(
        tbody,
        view.hosts.map((host) => row(host, view.self)),
      );
      summary.textContent =
        view.backend === 'local' ? 'Local backend: this host alone.' : `${view.hosts.length} live host${view.hosts.length === 1 ? '' : 's'} on Redis.`;
      drift.hidden = view.drift.length === 0;
      fill(
        drift,
        view.drift.map((d) =>
          h('p', { 'data-drift-job': d.job }, `Drift: ${d.job} differs between ${d.hosts.join(', ')} (a config or plugin edit not yet on every host).`),
        ),
      );
    } catch (err) {
      onError(err);
    }
  }

  return { reload: load };
}
