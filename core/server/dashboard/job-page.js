// A job's page (#/jobs/<name>): what it is, its charts over time, and its bulk actions.
import { ApiError, get, withQuery } from './api.js';
import { createCharts, WINDOWS } from './charts.js';
import { badge, fill, h, time } from './dom.js';

/** Where the chart window starts, as the `from` of a bulk action. */
export const windowStart = (window) => new Date(Date.now() - { '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 }[window]).toISOString();

export function createJobPage(root, { onError, onRun, bulk }) {
  const head = h('div', { 'data-job-head': '' });
  const chartsRoot = h('div', { class: 'chart-block', 'data-charts': 'job' });
  const charts = createCharts(chartsRoot, { onError });
  const status = h('p', { class: 'small', role: 'status', 'data-bulk-status': '' });
  let job = null;

  const act = (action) => async (e) => {
    const button = e.currentTarget;
    try {
      await bulk.ask(
        action,
        action === 'retry' ? { job: job.name, from: windowStart(charts.window), label: `in the ${WINDOWS[charts.window]}` } : { job: job.name, label: 'now' },
        button,
      );
    } catch (err) {
      onError(err);
    }
  };

  function render() {
    const j = job;
    fill(
      head,
      h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')),
      h('h2', { tabindex: '-1' }, j.name, j.enabled ? null : [' ', badge('disabled')]),
      j.description ? h('p', { class: 'muted' }, j.description) : null,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Schedule'),
        h('dd', {}, j.schedule === null ? 'trigger only' : `${j.scheduleText ?? j.schedule} (${j.schedule})`),
        h('dt', {}, 'Next run'),
        h('dd', {}, j.enabled ? time(j.nextRun) : 'disabled'),
        h('dt', {}, 'Last run'),
        h(
          'dd',
          {},
          j.lastRun ? [h('a', { href: `#/runs/${encodeURIComponent(j.lastRun.runId)}` }, badge(j.lastRun.status)), ' ', time(j.lastRun.at)] : 'never',
        ),
        h('dt', {}, 'Runs'),
        h(
          'dd',
          { 'data-job-counts': '' },
          `${j.counts.succeeded} succeeded · ${j.counts.failed} failed · ${j.counts.canceled} canceled · ${j.counts.running} running · ${j.counts.queued} queued`,
        ),
      ),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', class: 'primary', onclick: () => onRun(j) }, 'Run…'),
        h('button', { type: 'button', 'data-bulk': 'retry', onclick: act('retry') }, 'Retry failed runs…'),
        h('button', { type: 'button', 'data-bulk': 'cancel', onclick: act('cancel') }, 'Cancel queued runs…'),
        h('a', { class: 'button-link', href: withQuery('#/runs', { job: j.name }) }, 'Runs of this job →'),
      ),
      status,
    );
  }

  fill(root, head, chartsRoot);

  return {
    get name() {
      return job?.name ?? null;
    },
    charts,
    async show(name) {
      if (job?.name !== name) {
        job = null;
        status.textContent = '';
        fill(head, h('p', { class: 'muted' }, 'Loading…'));
      }
      try {
        job = await get(`/jobs/${encodeURIComponent(name)}`);
      } catch (err) {
        if (err instanceof ApiError && err.code === 'JOB_NOT_FOUND')
          return void fill(head, h('h2', {}, 'No such job'), h('p', {}, `The host has no job ${name}.`));
        return onError(err);
      }
      render();
      await charts.show(name);
    },
    /** The job changed (an event): its facts are read again. */
    async refresh() {
      if (!job) return;
      try {
        job = await get(`/jobs/${encodeURIComponent(job.name)}`);
        render();
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'JOB_NOT_FOUND')) onError(err);
      }
    },
    said(text) {
      status.textContent = text;
    },
  };
}
