// @ts-check
// Runs: the history list (filters, paging) and one run's detail (progress, attempts, actions).
import { can } from './access.js';
import { ApiError, get, post, withQuery } from './api.js';
import { absolute, badge, duration, fill, h, json, swap, time } from './dom.js';
import { rateLimitedNote } from './flow.js';
import { afterLink, childList, childrenOf } from './run-links.js';
import { createRunLog } from './run-log.js';

/** @import { EventDataMap } from '../../contract/events.js' */
/** @import { Page, Run, RunStatus, TriggerResult } from '../../contract/run.js' */
/** @import { Child } from './dom.js' */

export const PAGE_SIZE = 20;
/** @type {ReadonlySet<RunStatus>} */
const FINAL = new Set(['succeeded', 'failed', 'canceled']);

/**
 * The bar and its words: a succeeded run is complete whatever its handler last reported.
 * @param {Pick<Run, 'status' | 'progress'>} run
 */
function progressOf(run) {
  const fraction = run.status === 'succeeded' ? 1 : (run.progress?.fraction ?? 0);
  const pct = Math.round(fraction * 100);
  const text = run.progress?.text;
  return { fraction, label: `${pct}%${text ? ` · ${text}` : ''}` };
}

/**
 * @param {Pick<Run, 'status' | 'progress'>} run
 * @param {string} id
 */
function progressBar(run, id) {
  const { fraction, label } = progressOf(run);
  return h(
    'div',
    { class: 'progress', 'data-progress': '' },
    h('progress', { max: 1, value: fraction, 'aria-labelledby': id }),
    h('span', { id, class: 'small' }, label),
  );
}

/**
 * Updates a progress block in place (events come up to 10 times a second).
 * @param {Element | null} block
 * @param {Pick<Run, 'status' | 'progress'>} run
 */
function setProgress(block, run) {
  if (!block) return;
  const { fraction, label } = progressOf(run);
  /** @type {HTMLProgressElement} */ (block.querySelector('progress')).value = fraction;
  /** @type {HTMLSpanElement} */ (block.querySelector('span')).textContent = label;
}

/** The status a run event leaves its run in. @type {Readonly<Record<string, string>>} */
const REACHES = {
  'run.queued': 'queued',
  'run.retrying': 'queued',
  'run.started': 'running',
  'run.succeeded': 'succeeded',
  'run.failed': 'failed',
  'run.canceled': 'canceled',
};

/**
 * The runs list. `query` is `{ job, status }`; the cursor stack gives "newer" and "older" pages.
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void }} options
 */
export function createRunsList(root, { onError }) {
  const tbody = /** @type {HTMLTableSectionElement} */ (root.querySelector('tbody'));
  const pager = /** @type {HTMLElement} */ (root.querySelector('[data-pager]'));
  /** @type {Map<string, { run: Run, tr: HTMLTableRowElement }>} */
  const rows = new Map();
  /** @type {{ job?: string | undefined, status?: string | undefined }} */
  let query = {};
  /** @type {Array<string | undefined>} */
  let cursors = [undefined];
  /** @type {string | undefined} */
  let next;
  /** @type {Promise<unknown> | null} */
  let loading = null;

  /** @param {Run} run */
  function row(run) {
    return h(
      'tr',
      { 'data-run': run.id, 'data-status': run.status },
      h('th', { scope: 'row', 'data-label': 'Run' }, h('a', { href: `#/runs/${encodeURIComponent(run.id)}`, class: 'mono' }, run.id)),
      h('td', { 'data-label': 'Job' }, run.job),
      h(
        'td',
        { 'data-label': 'Status', 'data-col': 'status' },
        badge(run.status),
        run.attempts.length > 1 ? h('span', { class: 'muted small' }, ` attempt ${run.attempts.length}/${run.maxAttempts}`) : null,
      ),
      h('td', { 'data-label': 'Source' }, run.source),
      h('td', { 'data-label': 'Host', 'data-col': 'host' }, run.host ?? h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Created' }, time(run.createdAt)),
      h('td', { 'data-label': 'Duration' }, duration(run.durationMs)),
      h('td', { 'data-label': 'Progress' }, progressBar(run, `rp-${run.id}`)),
    );
  }

  function renderPager() {
    const page = cursors.length;
    fill(
      pager,
      h('button', { type: 'button', disabled: page === 1, onclick: () => go(cursors.length - 2) }, '← Newer'),
      h('span', { class: 'muted' }, `Page ${page}`),
      h(
        'button',
        {
          type: 'button',
          disabled: !next,
          onclick: () => {
            cursors.push(next);
            load();
          },
        },
        'Older →',
      ),
    );
  }

  /** @param {number} index */
  function go(index) {
    cursors = cursors.slice(0, Math.max(1, index + 1));
    load();
  }

  const empty = () => h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No runs match.'));

  async function load() {
    const cursor = cursors.at(-1);
    const current = (loading = get(withQuery('/runs', { ...query, limit: PAGE_SIZE, before: cursor })));
    try {
      const page = /** @type {Page<Run>} */ (await current);
      if (current !== loading) return; // a newer load is under way
      next = page.next;
      rows.clear();
      fill(
        tbody,
        page.items.map((run) => {
          const tr = row(run);
          rows.set(run.id, { run, tr });
          return tr;
        }),
      );
      if (page.items.length === 0) fill(tbody, empty());
      renderPager();
    } catch (err) {
      if (current === loading) onError(err);
    }
  }

  return {
    /**
     * Sets the filters and shows their first page.
     * @param {{ job: string, status: string }} filters
     */
    show(filters) {
      query = { job: filters.job || undefined, status: filters.status || undefined };
      cursors = [undefined];
      return load();
    },
    reload: load,
    /**
     * Whether a run not shown may belong on the first page now that `type` happened to it: it
     * reached the filtered status (a list of failed runs gains one at `run.failed`, not at its
     * `run.queued`, when the filter still left it out), or, without a status filter, it is new.
     * @param {string} type
     * @param {string} job
     */
    wants(type, job) {
      if (cursors.length !== 1 || (query.job && query.job !== job)) return false;
      if (!query.status) return type === 'run.queued';
      return REACHES[type] === query.status;
    },
    /** @param {string} id */
    has(id) {
      return rows.has(id);
    },
    /**
     * A run event for a shown run: progress in place; anything else re-reads the row.
     * @param {EventDataMap['run.progress']} data
     */
    progress(data) {
      const entry = rows.get(data.runId);
      if (!entry) return;
      entry.run = { ...entry.run, progress: { fraction: data.fraction, text: data.text } };
      setProgress(entry.tr.querySelector('[data-progress]'), entry.run);
    },
    /** @param {string} id */
    async refresh(id) {
      const entry = rows.get(id);
      if (!entry) return;
      try {
        const run = /** @type {Run} */ (await get(`/runs/${encodeURIComponent(id)}`));
        const current = rows.get(id);
        if (!current) return;
        // It left the status the list is filtered by (a running run ended): it leaves the list.
        if (query.status && run.status !== query.status) {
          current.tr.remove();
          rows.delete(id);
          if (rows.size === 0) fill(tbody, empty());
          return;
        }
        const tr = row(run);
        swap(current.tr, tr);
        rows.set(id, { run, tr });
      } catch (err) {
        onError(err);
      }
    },
  };
}

/**
 * One run's detail view, kept live by `progress()` and `refresh()`.
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void, navigate: (hash: string) => void }} options
 */
export function createRunDetail(root, { onError, navigate }) {
  /**
   * The run shown; only its id while its first read is under way.
   * @type {Run | { id: string, status?: undefined } | null}
   */
  let run = null;
  /** @type {Promise<unknown> | null} */
  let loading = null;
  // The log panel outlives re-renders: its lines and its socket are kept while the run is shown.
  const log = createRunLog();

  const field = (/** @type {string} */ label, /** @type {Child[]} */ ...value) => [h('dt', {}, label), h('dd', {}, ...value)];
  /** In the detail, the exact time matters as much as how long ago it was. */
  const at = (/** @type {string | null} */ iso) => (iso ? [time(iso), h('span', { class: 'muted small' }, ` · ${absolute(iso)}`)] : time(iso));

  /**
   * @param {'cancel' | 'retry'} action
   * @param {HTMLButtonElement} button
   */
  async function act(action, button) {
    const out = root.querySelector('[data-run-message]');
    button.disabled = true;
    try {
      const res = await post(`/runs/${encodeURIComponent(/** @type {Run} */ (run).id)}/${action}`);
      if (action === 'retry') return navigate(`#/runs/${encodeURIComponent(/** @type {TriggerResult} */ (res).runId)}`);
      await refresh();
    } catch (err) {
      if (out) fill(out, err instanceof ApiError ? `${err.code}: ${err.message}` : `Could not reach the host: ${/** @type {Error} */ (err).message}`);
      button.disabled = false;
    }
  }

  /** The runs the shown run's end triggered, once read (after its end). @type {{ id: string, runs: Run[] } | null} */
  let children = null;

  function render() {
    const focused = root.contains(document.activeElement) ? document.activeElement?.getAttribute('data-focus') : null;
    const r = /** @type {Run} */ (run);
    if (FINAL.has(r.status) && children?.id !== r.id) {
      children = { id: r.id, runs: [] };
      childrenOf(r.id).then(
        (runs) => {
          if (run?.id !== r.id) return;
          children = { id: r.id, runs };
          if (runs.length > 0) render();
        },
        () => undefined,
      );
    }
    draw(r);
    log.show(r.id, r.status);
    if (focused) /** @type {HTMLElement | null} */ (root.querySelector(`[data-focus="${focused}"]`))?.focus();
  }

  /** @param {Run} r */
  function draw(r) {
    const canCancel = (r.status === 'queued' || r.status === 'running') && can('run.cancel', r.job);
    const canRetry = (r.status === 'failed' || r.status === 'canceled') && can('run.retry', r.job);
    const delayed = r.status === 'queued' && r.runAt !== r.createdAt;
    fill(
      root,
      h('p', {}, h('a', { href: withQuery('#/runs', { job: r.job }) }, `← Runs of ${r.job}`)),
      h('h2', { tabindex: '-1', 'data-focus-target': '' }, 'Run ', h('span', { class: 'mono' }, r.id)),
      h(
        'div',
        { class: 'run-head' },
        h('span', { 'data-run-status': r.status, role: 'status' }, badge(r.status), delayed ? [' until ', time(r.runAt)] : null, rateLimitedNote(r, render)),
        h(
          'div',
          { class: 'buttons' },
          canCancel ? h('button', { type: 'button', 'data-focus': 'cancel', onclick: (e) => act('cancel', e.currentTarget) }, 'Cancel run') : null,
          canRetry ? h('button', { type: 'button', 'data-focus': 'retry', onclick: (e) => act('retry', e.currentTarget) }, 'Retry as a new run') : null,
        ),
      ),
      h('p', { class: 'error-text', 'data-run-message': '', role: 'alert' }),
      progressBar(r, 'detail-progress'),
      h(
        'dl',
        { class: 'facts' },
        field('Job', h('a', { href: withQuery('#/runs', { job: r.job }) }, r.job)),
        field(
          'Source',
          r.source,
          r.retryOf ? [' of ', h('a', { href: `#/runs/${encodeURIComponent(r.retryOf)}`, class: 'mono' }, r.retryOf)] : null,
          r.event ? ` (${r.event})` : null,
          afterLink(r),
        ),
        field('Queue', `${r.queue}, priority ${r.priority}`),
        field('Host', r.host ?? '—'),
        r.key ? field('Key', h('code', {}, r.key)) : null,
        r.traceId ? field('Trace', h('code', { 'data-run-trace': '', title: 'OpenTelemetry trace id: search your tracing backend for it' }, r.traceId)) : null,
        field('Created', at(r.createdAt)),
        field('Run at', at(r.runAt)),
        field('Started', at(r.startedAt)),
        field('Ended', at(r.endedAt)),
        field('Duration', duration(r.durationMs)),
        field('Attempts', `${r.attempts.length} of ${r.maxAttempts}`),
      ),
      h('h3', {}, 'Params'),
      h('pre', { class: 'json', 'data-run-params': '' }, json(r.params)),
      r.error
        ? [h('h3', {}, 'Error'), h('pre', { class: 'json error-text', 'data-run-error': '' }, `${r.error.code}: ${r.error.message}`)]
        : [h('h3', {}, 'Result'), h('pre', { class: 'json', 'data-run-result': '' }, FINAL.has(r.status) ? json(r.result) : '(not finished)')],
      log.element,
      children?.id === r.id ? childList(children.runs) : null,
      h('h3', {}, 'Attempts'),
      r.attempts.length === 0
        ? h('p', { class: 'muted' }, 'None yet.')
        : h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'compact' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  h('th', { scope: 'col' }, '#'),
                  h('th', { scope: 'col' }, 'Started'),
                  h('th', { scope: 'col' }, 'Ended'),
                  h('th', { scope: 'col' }, 'Outcome'),
                ),
              ),
              h(
                'tbody',
                {},
                r.attempts.map((a) =>
                  h(
                    'tr',
                    {},
                    h('td', { 'data-label': '#' }, String(a.n)),
                    h('td', { 'data-label': 'Started' }, time(a.startedAt)),
                    h('td', { 'data-label': 'Ended' }, time(a.endedAt)),
                    h(
                      'td',
                      { 'data-label': 'Outcome' },
                      a.error ? h('span', { class: 'error-text' }, `${a.error.code}: ${a.error.message}`) : a.endedAt ? 'ok' : 'running',
                    ),
                  ),
                ),
              ),
            ),
          ),
    );
  }

  async function refresh() {
    if (!run) return;
    const id = run.id;
    const current = (loading = get(`/runs/${encodeURIComponent(id)}`));
    try {
      const fresh = /** @type {Run} */ (await current);
      if (current !== loading || run?.id !== id) return;
      run = fresh;
      render();
    } catch (err) {
      if (current === loading) onError(err);
    }
  }

  return {
    get id() {
      return run?.id ?? null;
    },
    /** @param {string} id */
    async show(id) {
      run = { id };
      fill(root, h('p', { class: 'muted' }, 'Loading…'));
      const current = (loading = get(`/runs/${encodeURIComponent(id)}`));
      try {
        const fresh = /** @type {Run} */ (await current);
        if (current !== loading) return;
        run = fresh;
        render();
      } catch (err) {
        if (current !== loading) return;
        if (err instanceof ApiError && err.code === 'RUN_NOT_FOUND') fill(root, h('h2', {}, 'No such run'), h('p', {}, `The host knows no run ${id}.`));
        else onError(err);
      }
    },
    hide() {
      run = null;
      loading = null;
      log.hide();
    },
    /** @param {EventDataMap['run.progress']} data */
    progress(data) {
      if (!run || run.id !== data.runId || !run.status) return;
      run = { ...run, progress: { fraction: data.fraction, text: data.text } };
      setProgress(root.querySelector('[data-progress]'), run);
    },
    refresh,
  };
}
