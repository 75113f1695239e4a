// @ts-check
// Bulk actions: "Retry failed runs…" and "Cancel queued runs…". A dry run counts the runs first;
// the confirmation says how many and of what, and the action it confirms repeats the dry run's
// filter with its `to`, so it touches the runs it counted and none that came after.
import { ApiError, post } from './api.js';
import { fill, h } from './dom.js';

/** @import { BulkFilter, BulkResult } from '../../contract/views.js' */
/** @typedef {'retry' | 'cancel'} BulkAction */

/** @type {Readonly<Record<BulkAction, { route: string, verb: string, done: string, what: string, which: string }>>} */
const WORDS = {
  retry: { route: '/runs/retry', verb: 'Retry', done: 'Retried', what: 'failed', which: 'ended' },
  cancel: { route: '/runs/cancel', verb: 'Cancel', done: 'Canceled', what: 'queued', which: 'were queued' },
};

const plural = (/** @type {number} */ n, /** @type {string} */ word) => `${n} ${word} run${n === 1 ? '' : 's'}`;

/**
 * Wires the `<dialog id="bulk-dialog">`. `ask(action, { job, from, label })` counts, asks, and on
 * yes acts; `onDone(result)` runs after an action (the page refreshes what it shows).
 * @param {HTMLDialogElement} dialog
 * @param {{ onDone: (result: BulkResult, text: string) => void }} options
 */
export function createBulk(dialog, { onDone }) {
  const text = /** @type {HTMLElement} */ (dialog.querySelector('[data-bulk-text]'));
  const list = /** @type {HTMLElement} */ (dialog.querySelector('[data-bulk-list]'));
  const confirm = /** @type {HTMLButtonElement} */ (dialog.querySelector('[data-bulk-confirm]'));
  const close = /** @type {HTMLButtonElement} */ (dialog.querySelector('[data-close]'));
  /** @type {HTMLElement | null} */
  let opener = null;
  /** @type {{ action: BulkAction, body: BulkFilter, count: number } | null} */
  let pending = null;

  dialog.addEventListener('close', () => {
    pending = null;
    opener?.focus();
  });

  confirm.addEventListener('click', async () => {
    if (!pending) return;
    const { action, body, count } = pending;
    const w = WORDS[action];
    confirm.disabled = true;
    try {
      const res = /** @type {BulkResult} */ (await post(w.route, body));
      const parts = [`${w.done} ${plural(res.touched, w.what)}.`];
      if (res.errors.length > 0) parts.push(`${res.errors.length} left alone: ${res.errors.map((e) => `${e.runId} ${e.code}`).join(', ')}.`);
      if (res.touched !== count && res.errors.length === 0) parts.push(`(${count} were counted; the others changed meanwhile.)`);
      dialog.close();
      onDone(res, parts.join(' '));
    } catch (err) {
      fill(
        text,
        h(
          'span',
          { class: 'error-text' },
          err instanceof ApiError ? `${err.code}: ${err.message}` : `Could not reach the host: ${/** @type {Error} */ (err).message}`,
        ),
      );
      confirm.disabled = false;
    }
  });

  return {
    /**
     * Counts the runs `action` would touch, then asks.
     * @param {BulkAction} action
     * @param {{ job?: string | null, from?: string | null, label: string }} what
     * @param {HTMLElement} [button]
     */
    async ask(action, { job = null, from = null, label }, button) {
      const w = WORDS[action];
      opener = button ?? /** @type {HTMLElement | null} */ (document.activeElement);
      /** @type {BulkFilter} */
      const filter = { ...(job && { job }), ...(from && { from }) };
      const dry = /** @type {BulkResult} */ (await post(w.route, { ...filter, dryRun: true }));
      pending = dry.matched > 0 ? { action, body: { ...filter, to: dry.to }, count: dry.matched } : null;
      // A token limited to some jobs: the runs of the others are left out, and the question says so.
      const out = dry.excluded && dry.excluded.runs > 0 ? dry.excluded : null;
      const of = job ? ` of ${job}` : out ? ' of the jobs your token may act on' : ' of every job';
      const left = out
        ? ` ${plural(out.runs, w.what)} of ${out.jobs.join(', ')} ${out.runs === 1 ? 'is' : 'are'} left out: your token may not act on ${out.jobs.length === 1 ? 'that job' : 'those jobs'}.`
        : '';
      fill(
        text,
        dry.matched === 0
          ? `No ${w.what} runs${of} ${w.which} ${label}.${left}`
          : `${w.verb} ${plural(dry.matched, w.what)}${of} that ${w.which} ${label}?${action === 'retry' ? ' Each one runs again as a new run.' : ''}${left}`,
      );
      fill(
        list,
        dry.runs.slice(0, 10).map((r) => h('li', { class: 'mono small' }, `${r.runId} ${r.job}`)),
        dry.runs.length > 10 ? h('li', { class: 'muted small' }, `… and ${dry.runs.length - 10} more`) : null,
      );
      confirm.hidden = dry.matched === 0;
      confirm.disabled = false;
      confirm.textContent = `${w.verb} ${plural(dry.matched, w.what)}`;
      close.textContent = dry.matched === 0 ? 'Close' : 'Never mind';
      dialog.dataset.count = String(dry.matched);
      dialog.dataset.action = action;
      dialog.showModal();
      (dry.matched === 0 ? close : confirm).focus();
      return dry;
    },
  };
}
