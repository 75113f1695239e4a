// @ts-check
// A job's page (#/jobs/<name>): what it is, where its alert rules stand, its charts over time, and
// its bulk actions, its pause and its queue's.
import { can } from './access.js';
import { alertBadge, failures, recoveredStreak } from './alert.js';
import { ApiError, get, post, withQuery } from './api.js';
import { createCharts, WINDOWS } from './charts.js';
import { absolute, badge, fill, h, time } from './dom.js';

/** @import { Notification } from '../../contract/notification.js' */
/** @import { Page } from '../../contract/run.js' */
/** @import { JobView, SeriesWindow } from '../../contract/views.js' */
/** @import { createBulk } from './bulk.js' */

/** Where the chart window starts, as the `from` of a bulk action. */
export const windowStart = (/** @type {SeriesWindow} */ window) =>
  new Date(Date.now() - { '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 }[window]).toISOString();

/**
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void, onRun: (job: JobView) => void, bulk: ReturnType<typeof createBulk> }} options
 */
export function createJobPage(root, { onError, onRun, bulk }) {
  const head = h('div', { 'data-job-head': '' });
  const chartsRoot = h('div', { class: 'chart-block', 'data-charts': 'job' });
  const charts = createCharts(chartsRoot, { onError });
  const status = h('p', { class: 'small', role: 'status', 'data-bulk-status': '' });
  /** @type {JobView | null} */
  let job = null;
  /**
   * The newest `recovered` notification of the job (among its newest 50), or null.
   * @type {Pick<Notification, 'job' | 'rule' | 'at' | 'runId' | 'message'> | null}
   */
  let recovery = null;
  /**
   * Reads of the job, counted: an answer is drawn only when no read started after it. A pause
   * answered, then the reload its event asks for 100 ms later, race the page's own read: the older
   * answer landing last would draw the job as it was before the click.
   */
  let reads = 0;

  /** @type {(action: 'retry' | 'cancel') => (e: MouseEvent & { currentTarget: HTMLButtonElement }) => Promise<void>} */
  const act = (action) => async (e) => {
    const button = e.currentTarget;
    try {
      const name = /** @type {JobView} */ (job).name;
      await bulk.ask(
        action,
        action === 'retry' ? { job: name, from: windowStart(charts.window), label: `in the ${WINDOWS[charts.window]}` } : { job: name, label: 'now' },
        button,
      );
    } catch (err) {
      onError(err);
    }
  };

  /** Pauses or resumes the job itself (SPEC §13): its runs wait, triggers are still recorded. */
  const togglePause = async (/** @type {MouseEvent & { currentTarget: HTMLButtonElement }} */ e) => {
    const button = e.currentTarget;
    const j = /** @type {JobView} */ (job);
    button.disabled = true;
    try {
      const next = /** @type {JobView} */ (await post(`/jobs/${encodeURIComponent(j.name)}/${j.pause?.job ? 'resume' : 'pause'}`));
      // Newer than any read still on its way.
      reads++;
      if (job?.name !== j.name) return;
      job = next;
      render();
    } catch (err) {
      button.disabled = false;
      onError(err);
    }
  };

  /**
   * Pauses or resumes the job's queue (SPEC §13): the runs of every job in it wait. The host answers
   * with the queue, not the job, so the job is read again (the `queue.paused` event reloads it too).
   */
  const toggleQueuePause = async (/** @type {MouseEvent & { currentTarget: HTMLButtonElement }} */ e) => {
    const button = e.currentTarget;
    const j = /** @type {JobView} */ (job);
    button.disabled = true;
    try {
      await post(`/queues/${encodeURIComponent(j.queue)}/${j.pause?.queue ? 'resume' : 'pause'}`);
      const n = ++reads;
      const next = /** @type {JobView} */ (await get(`/jobs/${encodeURIComponent(j.name)}`));
      // A newer read (the page moved on to another job, or the event's reload) draws instead.
      if (n !== reads || job?.name !== j.name) return;
      job = next;
      render();
    } catch (err) {
      button.disabled = false;
      onError(err);
    }
  };

  /**
   * The newest `recovered` notification of `name` among its newest 50 notifications.
   * @param {string} name
   */
  async function readRecovery(name) {
    const page = /** @type {Page<Notification>} */ (await get(withQuery('/notifications', { job: name, limit: 50 })));
    return page.items.find((n) => n.rule === 'recovered') ?? null;
  }

  /**
   * The alert facts: in alert or not, the last recovery, the last missed fire.
   * @param {JobView} j
   */
  function alertFacts(j) {
    const a = j.alert;
    if (!a) return null;
    const streak = recovery ? recoveredStreak(j, recovery) : null;
    return [
      h('dt', {}, 'Alert'),
      h(
        'dd',
        { 'data-alert-state': a.open ? 'open' : 'closed' },
        a.open
          ? alertBadge(j)
          : a.failStreak > 0
            ? `not in alert · ${a.failStreak.toLocaleString('en-US')} failed in a row`
            : h('span', { class: 'muted' }, 'not in alert'),
      ),
      recovery
        ? [
            h('dt', {}, 'Last recovery'),
            h(
              'dd',
              { 'data-recovered': '' },
              badge('recovered', 'recovered'),
              ' ',
              time(recovery.at),
              streak !== null ? ` after ${failures(streak)}` : null,
              recovery.runId ? [' · ', h('a', { href: `#/runs/${encodeURIComponent(recovery.runId)}` }, recovery.runId)] : null,
            ),
          ]
        : null,
      a.missedThrough
        ? [
            h('dt', {}, 'Last missed fire'),
            // The latest fire the `missed` rule accounted for: notified, or a fire of a stretch the job was disabled.
            h('dd', { 'data-missed': '' }, badge('missed', absolute(a.missedThrough)), ' ', time(a.missedThrough)),
          ]
        : null,
    ];
  }

  function render() {
    const j = /** @type {JobView} */ (job);
    fill(
      head,
      h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')),
      h(
        'h2',
        { tabindex: '-1' },
        j.name,
        j.enabled ? null : [' ', badge('disabled')],
        j.paused ? [' ', h('span', { 'data-paused': '' }, badge('paused', j.pause?.job ? 'paused' : 'queue paused'))] : null,
        j.alert?.open ? [' ', alertBadge(j)] : null,
      ),
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
        h('dt', {}, 'Queue'),
        h(
          'dd',
          { 'data-queue': j.queue },
          j.queue,
          j.pause?.queue ? [' ', badge('paused')] : null,
          // A queue holds other jobs too: the host refuses it to an operator limited by `jobs`, and can() says no for them.
          can(j.pause?.queue ? 'queue.resume' : 'queue.pause')
            ? [
                ' ',
                h(
                  'button',
                  { type: 'button', 'data-queue-pause': j.pause?.queue ? 'resume' : 'pause', onclick: toggleQueuePause },
                  j.pause?.queue ? 'Resume queue' : 'Pause queue',
                ),
              ]
            : null,
        ),
        alertFacts(j),
      ),
      h(
        'div',
        { class: 'buttons' },
        can('job.run', j.name) ? h('button', { type: 'button', class: 'primary', onclick: () => onRun(j) }, 'Run…') : null,
        can('runs.retry', j.name) ? h('button', { type: 'button', 'data-bulk': 'retry', onclick: act('retry') }, 'Retry failed runs…') : null,
        can('runs.cancel', j.name) ? h('button', { type: 'button', 'data-bulk': 'cancel', onclick: act('cancel') }, 'Cancel queued runs…') : null,
        can(j.pause?.job ? 'job.resume' : 'job.pause', j.name)
          ? h('button', { type: 'button', 'data-pause': j.pause?.job ? 'resume' : 'pause', onclick: togglePause }, j.pause?.job ? 'Resume' : 'Pause')
          : null,
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
    /** @param {string} name */
    async show(name) {
      if (job?.name !== name) {
        job = null;
        recovery = null;
        status.textContent = '';
        fill(head, h('p', { class: 'muted' }, 'Loading…'));
      }
      const n = ++reads;
      try {
        const [next, found] = await Promise.all([/** @type {Promise<JobView>} */ (get(`/jobs/${encodeURIComponent(name)}`)), readRecovery(name)]);
        if (n === reads) job = next;
        // Superseded by a newer read of the same job: that one drew the job; the recovery is still news.
        if (job?.name === name) {
          recovery = found;
          render();
        }
      } catch (err) {
        if (err instanceof ApiError && err.code === 'JOB_NOT_FOUND') {
          // No charts either: the last job's would stand under a name that has none.
          chartsRoot.hidden = true;
          return void fill(head, h('h2', {}, 'No such job'), h('p', {}, `The host has no job ${name}.`));
        }
        return onError(err);
      }
      chartsRoot.hidden = false;
      await charts.show(name);
    },
    /** The job changed (an event): its facts are read again. */
    async refresh() {
      if (!job) return;
      const { name } = job;
      const n = ++reads;
      try {
        const next = /** @type {JobView} */ (await get(`/jobs/${encodeURIComponent(name)}`));
        if (n !== reads || job?.name !== name) return;
        job = next;
        render();
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'JOB_NOT_FOUND')) onError(err);
      }
    },
    /**
     * A `notification` event of this job: a `recovered` one is the last recovery (no request needed).
     * @param {Pick<Notification, 'job' | 'rule' | 'at' | 'runId' | 'message'>} n
     */
    noted(n) {
      if (!job || n.job !== job.name || n.rule !== 'recovered') return;
      if (recovery && recovery.at > n.at) return;
      recovery = n;
      render();
    },
    /** @param {string} text */
    said(text) {
      status.textContent = text;
    },
  };
}
