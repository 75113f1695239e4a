// @ts-check
// The jobs table: one row per job, updated in place from events.
import { can } from './access.js';
import { alertBadge } from './alert.js';
import { badge, fill, h, swap, time } from './dom.js';

/** @import { JobView } from '../../contract/views.js' */

/**
 * @param {HTMLTableSectionElement} tbody
 * @param {{ onRun: (job: JobView) => void, onToggle: (job: JobView, enabled: boolean, input: HTMLInputElement) => void }} actions
 */
export function createJobsTable(tbody, actions) {
  /** @type {Map<string, { job: JobView, tr: HTMLTableRowElement }>} */
  const rows = new Map();

  /** @param {JobView} job */
  function row(job) {
    const id = `job-${job.name}`;
    const last = job.lastRun;
    const active = [job.counts.running ? `${job.counts.running} running` : '', job.counts.queued ? `${job.counts.queued} queued` : '']
      .filter(Boolean)
      .join(', ');
    return h(
      'tr',
      { 'data-job': job.name, class: job.enabled ? '' : 'is-disabled' },
      h(
        'th',
        { scope: 'row', 'data-label': 'Job', id },
        h('a', { href: `#/jobs/${encodeURIComponent(job.name)}`, class: 'job-name', title: `${job.name}: charts, runs and bulk actions` }, job.name),
        job.alert?.open ? [' ', alertBadge(job)] : null,
        job.paused ? [' ', badge('paused')] : null,
        job.description ? h('div', { class: 'muted small' }, job.description) : null,
      ),
      h(
        'td',
        { 'data-label': 'Schedule', 'data-col': 'schedule' },
        job.schedule === null
          ? h('span', { class: 'muted' }, 'trigger only')
          : [
              h('div', {}, job.scheduleText ?? job.schedule),
              h('code', { class: 'small' }, job.schedule),
              // An `every` schedule counts from the epoch; only cron reads the wall clock of a zone.
              job.schedule.startsWith('every ') ? null : h('span', { class: 'muted small' }, ` ${job.timezone}`),
            ],
        job.on.length ? h('div', { class: 'muted small' }, `on ${job.on.map((o) => o.event).join(', ')}`) : null,
      ),
      h('td', { 'data-label': 'Next run', 'data-col': 'next' }, job.enabled ? time(job.nextRun) : h('span', { class: 'muted' }, 'disabled')),
      h(
        'td',
        { 'data-label': 'Last run', 'data-col': 'last' },
        last
          ? [
              h('a', { href: `#/runs/${encodeURIComponent(last.runId)}`, 'aria-label': `Last run of ${job.name}: ${last.status}` }, badge(last.status)),
              ' ',
              time(last.at),
            ]
          : h('span', { class: 'muted' }, 'never'),
        active ? h('div', { class: 'small', 'data-active': '' }, badge('running', active)) : null,
        h('div', { class: 'muted small' }, `${job.counts.succeeded} ok · ${job.counts.failed} failed`),
      ),
      h(
        'td',
        { 'data-label': 'Enabled', 'data-col': 'enabled' },
        // A token that may not toggle the job sees its state, not a switch.
        can(job.enabled ? 'job.disable' : 'job.enable', job.name)
          ? h(
              'label',
              { class: 'toggle' },
              h('input', {
                type: 'checkbox',
                checked: job.enabled,
                'data-focus': 'toggle',
                'aria-describedby': id,
                onchange: (e) => actions.onToggle(job, e.target.checked, e.target),
              }),
              h('span', { 'data-enabled-text': '' }, job.enabled ? 'enabled' : 'disabled'),
            )
          : h('span', { 'data-enabled-text': '' }, job.enabled ? 'enabled' : 'disabled'),
      ),
      h(
        'td',
        { class: 'actions' },
        can('job.run', job.name)
          ? h('button', { type: 'button', 'data-focus': 'run', 'aria-describedby': id, onclick: () => actions.onRun(job) }, 'Run…')
          : null,
      ),
    );
  }

  return {
    /**
     * Replaces every row (sorted by name).
     * @param {readonly JobView[]} jobs
     */
    setAll(jobs) {
      rows.clear();
      const list = [...jobs].sort((a, b) => a.name.localeCompare(b.name));
      fill(
        tbody,
        list.map((job) => {
          const tr = row(job);
          rows.set(job.name, { job, tr });
          return tr;
        }),
      );
      if (list.length === 0) fill(tbody, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No jobs yet: drop a plugin file into the plugins directory.')));
    },
    /**
     * Adds or updates one job's row.
     * @param {JobView} job
     */
    upsert(job) {
      const existing = rows.get(job.name);
      const tr = row(job);
      if (existing) swap(existing.tr, tr);
      else {
        if (rows.size === 0) tbody.replaceChildren();
        const after = [...rows.keys()].sort().find((name) => name.localeCompare(job.name) > 0);
        tbody.insertBefore(tr, after ? (rows.get(after)?.tr ?? null) : null);
      }
      rows.set(job.name, { job, tr });
    },
    /** @param {string} name */
    remove(name) {
      rows.get(name)?.tr.remove();
      rows.delete(name);
      if (rows.size === 0) this.setAll([]);
    },
    /** @param {string} name */
    get(name) {
      return rows.get(name)?.job;
    },
    names() {
      return [...rows.keys()].sort();
    },
  };
}
