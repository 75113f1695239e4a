// @ts-check
// The dashboard: wires the views to the API and to the one WebSocket, and routes on the URL hash
// (#/jobs, #/jobs/<name>, #/runs?job=x&status=failed, #/runs/<id>, #/notifications, #/hosts, #/audit).
// What changes something is drawn only when the token may do it: see `can()` in access.js.
import { can, loadWhoami, showWho } from './access.js';
import { ApiError, eventsUrl, get, getToken, post, setToken, withQuery } from './api.js';
import { createAudit } from './audit.js';
import { createBulk } from './bulk.js';
import { createCharts, WINDOWS } from './charts.js';
import { coalescer, fill, h, tick } from './dom.js';
import { createFeed } from './feed.js';
import { renderStats } from './header.js';
import { createHosts } from './hosts.js';
import { createJobPage, windowStart } from './job-page.js';
import { createJobsTable } from './jobs.js';
import { createLive } from './live.js';
import { createNotifications } from './notifications.js';
import { createRunDialog } from './params.js';
import { createRunDetail, createRunsList } from './runs.js';
import { createTokenPrompt } from './token.js';

/** @import { AnyHostEvent } from '../../contract/events.js' */
/** @import { AuditFilters } from './audit.js' */
/** @import { Page } from '../../contract/run.js' */
/** @import { JobView, Stats } from '../../contract/views.js' */

/**
 * What the URL hash shows.
 * @typedef {{ view: 'jobs' } | { view: 'job', name: string } | { view: 'runs', job: string, status: string } | { view: 'run', id: string } | { view: 'notifications' } | { view: 'hosts' } | ({ view: 'audit' } & AuditFilters)} Route
 */

/** An element of the page shell (index.html), which has every one this file asks for. */
const $ = (/** @type {string} */ selector) => /** @type {HTMLElement} */ (document.querySelector(selector));
const later = coalescer();
const banner = $('#page-error');

/** @param {unknown} err */
function showError(err) {
  if (err instanceof ApiError && err.status === 401) return; // the token prompt deals with it
  banner.textContent =
    err instanceof ApiError ? `${err.code ?? err.status}: ${err.message}` : `Cannot reach the host (${/** @type {Error} */ (err).message}). Retrying…`;
  banner.dataset.kind = err instanceof ApiError ? 'api' : 'unreachable';
  banner.hidden = false;
}
const clearError = () => {
  banner.hidden = true;
};

// ---------------------------------------------------------------- token

const forget = $('#forget-token');
const token = createTokenPrompt(/** @type {HTMLDialogElement} */ ($('#token-dialog')), {
  onUnlocked: () => {
    forget.hidden = false;
    live.retryNow();
    return loadAll();
  },
});
forget.addEventListener('click', () => {
  setToken(null);
  location.reload();
});

// ---------------------------------------------------------------- views

const jobs = createJobsTable(/** @type {HTMLTableSectionElement} */ ($('#jobs-table tbody')), {
  onRun: (job) => runDialog.open(job),
  onToggle: async (job, enabled, input) => {
    try {
      jobs.upsert(/** @type {JobView} */ (await post(`/jobs/${encodeURIComponent(job.name)}/${enabled ? 'enable' : 'disable'}`)));
    } catch (err) {
      input.checked = !enabled;
      showError(err);
    }
  },
});
const navigate = (/** @type {string} */ hash) => {
  location.hash = hash;
};
const runDialog = createRunDialog(/** @type {HTMLDialogElement} */ ($('#run-dialog')), {
  onQueued: (runId) => navigate(`#/runs/${encodeURIComponent(runId)}`),
});
for (const button of document.querySelectorAll('dialog [data-close]')) button.addEventListener('click', () => button.closest('dialog')?.close());

const overviewStatus = $('.overview [data-bulk-status]');
const bulk = createBulk(/** @type {HTMLDialogElement} */ ($('#bulk-dialog')), {
  onDone: (_result, text) => {
    if (route.view === 'job') jobPage.said(text);
    else overviewStatus.textContent = text;
    later('charts', 100, refreshCharts);
  },
});
const overview = createCharts($('[data-charts="overview"]'), { onError: showError });
const jobPage = createJobPage($('#view-job'), { onError: showError, onRun: (job) => runDialog.open(job), bulk });
/** The overview's buttons: "Retry failed runs…" of every job, for a token that may. */
function renderOverviewActions() {
  /** @param {MouseEvent & { currentTarget: HTMLButtonElement }} e */
  const retryAll = async (e) => {
    try {
      await bulk.ask('retry', { from: windowStart(overview.window), label: `in the ${WINDOWS[overview.window]}` }, e.currentTarget);
    } catch (err) {
      showError(err);
    }
  };
  fill(
    $('[data-overview-actions]'),
    can('runs.retry') ? h('button', { type: 'button', 'data-bulk': 'retry-all', onclick: retryAll }, 'Retry failed runs…') : null,
  );
}

/** The charts on screen read their series again (runs moved). */
function refreshCharts() {
  if (route.view === 'jobs') void overview.refresh();
  else if (route.view === 'job') void jobPage.charts.refresh();
}

const runs = createRunsList($('#view-runs'), { onError: showError });
const detail = createRunDetail($('#view-run'), { onError: showError, navigate });
const notes = createNotifications($('#view-notifications'), { onError: showError });
const hosts = createHosts($('#view-hosts'), { onError: showError });
const audit = createAudit($('#view-audit'), { onError: showError, navigate });
const feed = createFeed($('#feed'));
/** The runs filter: a form with a `job` and a `status` select. */
const runsFilter = /** @type {HTMLFormElement & { elements: { job: HTMLSelectElement, status: HTMLSelectElement } }} */ ($('#runs-filter'));

runsFilter.addEventListener('change', () => {
  const data = new FormData(runsFilter);
  navigate(withQuery('#/runs', { job: data.get('job'), status: data.get('status') }));
});

/** @type {string | null} */
let shownNames = null;

/** The job pickers (runs filter, feed filter) list the jobs there are now. */
function syncJobNames() {
  const names = jobs.names();
  // Rebuilding a <select> closes it under the user's pointer: only when the set of jobs changed.
  if (shownNames === names.join('\n')) return;
  shownNames = names.join('\n');
  feed.setJobs(names);
  const select = runsFilter.elements.job;
  const current = select.value;
  fill(
    select,
    h('option', { value: '' }, 'All jobs'),
    names.map((n) => h('option', { value: n }, n)),
  );
  if (current && !names.includes(current)) select.append(h('option', { value: current }, current));
  select.value = current;
}

// ---------------------------------------------------------------- routing

/** @type {Route} */
let route = { view: 'jobs' };

/** @returns {Route} */
function parseHash() {
  const [path, qs] = (location.hash.slice(1) || '/jobs').split('?');
  const parts = path.split('/').filter(Boolean);
  const q = new URLSearchParams(qs ?? '');
  if (parts[0] === 'runs' && parts[1]) return { view: 'run', id: decodeURIComponent(parts[1]) };
  if (parts[0] === 'jobs' && parts[1]) return { view: 'job', name: decodeURIComponent(parts[1]) };
  if (parts[0] === 'runs') return { view: 'runs', job: q.get('job') ?? '', status: q.get('status') ?? '' };
  if (parts[0] === 'notifications') return { view: 'notifications' };
  if (parts[0] === 'hosts') return { view: 'hosts' };
  if (parts[0] === 'audit')
    return { view: 'audit', token: q.get('token') ?? '', action: q.get('action') ?? '', target: q.get('target') ?? '', outcome: q.get('outcome') ?? '' };
  return { view: 'jobs' };
}

/**
 * Shows the view the hash names; loads its data unless the first full load is still to come.
 * @param {boolean} focus
 */
function showRoute(focus, load = true) {
  route = parseHash();
  for (const section of document.querySelectorAll('main [data-view]')) if (section instanceof HTMLElement) section.hidden = section.dataset.view !== route.view;
  const tab = route.view === 'run' ? 'runs' : route.view === 'job' ? 'jobs' : route.view;
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.getAttribute('data-nav') === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${route.view === 'run' ? `Run ${route.id}` : route.view === 'job' ? route.name : tab[0].toUpperCase() + tab.slice(1)} · jobhost`;
  if (route.view !== 'run') detail.hide();
  if (route.view === 'runs') {
    if (runsFilter.elements.job.value !== route.job && route.job) runsFilter.elements.job.append(h('option', { value: route.job }, route.job));
    runsFilter.elements.job.value = route.job;
    runsFilter.elements.status.value = route.status;
  }
  if (!load) return;
  // The last view's error is not this one's: what this view's reads fail with shows again.
  clearError();
  loadRoute().then(() => {
    // Moving focus to the new view's heading tells screen readers the page changed.
    if (focus) /** @type {HTMLElement | null} */ (document.querySelector(`main [data-view="${route.view}"] h2`))?.focus();
  });
}

async function loadRoute() {
  if (route.view === 'runs') {
    await runs.show(route);
  } else if (route.view === 'run') {
    await detail.show(route.id);
  } else if (route.view === 'notifications') {
    await notes.reload();
  } else if (route.view === 'hosts') {
    await hosts.reload();
  } else if (route.view === 'audit') {
    await audit.show(route);
  } else if (route.view === 'job') {
    await jobPage.show(route.name);
  } else {
    await overview.show(null);
  }
}

window.addEventListener('hashchange', () => showRoute(true));

// ---------------------------------------------------------------- data

async function refreshStats() {
  try {
    renderStats($('#stats'), /** @type {Stats} */ (await get('/stats')));
    // The host answers again: a "cannot reach" banner is out of date (an API error stays for its view).
    if (!banner.hidden && banner.dataset.kind === 'unreachable') clearError();
  } catch (err) {
    showError(err);
  }
}

/** @param {string} name */
async function refreshJob(name) {
  try {
    jobs.upsert(/** @type {JobView} */ (await get(`/jobs/${encodeURIComponent(name)}`)));
  } catch (err) {
    if (err instanceof ApiError && err.code === 'JOB_NOT_FOUND') jobs.remove(name);
    else showError(err);
  }
  syncJobNames();
}

/** Everything over HTTP: on start, after a gap in the event stream, after the host restarted. */
async function loadAll() {
  try {
    // Who the token is first: every button drawn below asks can(). Read again each time, since a
    // config edit may have changed the token's role or jobs.
    const [list, stats, me] = await Promise.all([
      /** @type {Promise<Page<JobView>>} */ (get('/jobs')),
      /** @type {Promise<Stats>} */ (get('/stats')),
      loadWhoami(),
    ]);
    showWho($('#who'), me);
    renderOverviewActions();
    jobs.setAll(list.items);
    syncJobNames();
    renderStats($('#stats'), stats);
    clearError();
  } catch (err) {
    showError(err);
  }
  await loadRoute();
}

/**
 * What one event changes on the page; replayed events a reload already covers only go to the feed.
 * @param {AnyHostEvent} e
 */
function apply(e) {
  // Destructured together, `data` narrows with each `case` of `type`.
  const { type, data: d } = e;
  switch (type) {
    case 'job.registered':
    case 'job.updated':
    case 'job.enabled':
    case 'job.disabled':
    case 'job.paused':
    case 'job.resumed':
      later(`job:${d.job}`, 50, () => refreshJob(d.job));
      later('stats', 300, refreshStats);
      if (route.view === 'job' && route.name === d.job) later('job-page', 50, () => jobPage.refresh());
      break;
    case 'queue.paused':
    case 'queue.resumed':
      // Every job of the queue shows it: read them all again.
      later('jobs', 100, loadAll);
      break;
    case 'job.removed':
      jobs.remove(d.job);
      syncJobNames();
      later('stats', 300, refreshStats);
      break;
    case 'run.progress':
      runs.progress(d);
      detail.progress(d);
      break;
    case 'run.queued':
    case 'run.started':
    case 'run.retrying':
    case 'run.succeeded':
    case 'run.failed':
    case 'run.canceled':
      later(`job:${d.job}`, 150, () => refreshJob(d.job));
      later('stats', 300, refreshStats);
      // The charts count finished runs and the backlog: any of these moves them.
      if (route.view === 'jobs' || (route.view === 'job' && route.name === d.job)) later('charts', 500, refreshCharts);
      if (route.view === 'job' && route.name === d.job) later('job-page', 150, () => jobPage.refresh());
      if (route.view === 'runs') {
        if (runs.has(d.runId)) later(`run:${d.runId}`, 50, () => runs.refresh(d.runId));
        else if (runs.wants(type, d.job)) later('runs', 150, () => runs.reload());
      } else {
      }
      if (detail.id === d.runId) later('detail', 50, () => detail.refresh());
      break;
    case 'notification':
      notes.add({ ...d, at: e.at });
      // An alert rule moved the job's alert state (`missed` moves missedThrough; runs move the rest).
      if (d.job) {
        later(`job:${d.job}`, 150, () => refreshJob(d.job));
        if (route.view === 'job' && route.name === d.job) {
          jobPage.noted({ ...d, at: d.at ?? e.at });
          later('job-page', 150, () => jobPage.refresh());
        }
      }
      break;
    case 'notification.delivered':
    case 'notification.failed':
      notes.changed(d);
      break;
    case 'host.started':
    case 'config.reloaded':
    // Events of other hosts were lost on their way here: what the page shows may be stale.
    case 'events.gap':
      later('all', 100, loadAll);
      break;
    case 'host.stopping':
    case 'host.stopped':
      later('stats', 50, refreshStats);
      break;
    default:
      break;
  }
}

const conn = $('#conn');
/** @type {Readonly<Record<string, string>>} */
const CONN_TEXT = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…' };

const live = createLive({
  url: eventsUrl,
  onState: (state) => {
    conn.dataset.state = state;
    conn.textContent = CONN_TEXT[state];
  },
  onHello: (_hello, reload) => {
    if (reload) void loadAll();
  },
  onEvent: (e, covered) => {
    feed.add(e);
    if (!covered) apply(e);
  },
  // Any request answered 401 asks for the token again; one that fails otherwise (the host is
  // down) changes nothing, and the reconnect goes on.
  onRefused: () => void loadWhoami().catch(() => undefined),
});
// For people poking at the page from the console, and for the browser tests.
/** @type {Window & { jobhostDashboard?: unknown }} */ (window).jobhostDashboard = {
  live,
  charts: () => ({ overview: overview.read(), job: jobPage.charts.read() }),
};

// ---------------------------------------------------------------- start

async function boot() {
  showRoute(false, false);
  /** @type {Stats} */
  let stats;
  for (let attempt = 0; ; attempt++) {
    try {
      stats = /** @type {Stats} */ (await get('/stats'));
      break;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        await token.waiting;
        continue;
      }
      showError(err);
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
    }
  }
  forget.hidden = !getToken();
  renderStats($('#stats'), stats);
  // The last hundred events fill the feed; the hello that answers triggers the first full load.
  live.start(Math.max(0, stats.events.seq - 100));
  setInterval(() => tick(), 5000);
  // Heartbeats come every second and are not events: the Hosts view reads them again while shown.
  setInterval(() => {
    if (route.view === 'hosts' && !document.hidden) void hosts.reload();
  }, 2000);
}

void boot();
