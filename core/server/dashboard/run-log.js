// @ts-check
// A run's log in its detail view: the lines kept with the run (GET /runs/:id/logs), then each new
// line as it arrives. The page's main socket leaves log lines out (they would flood it); this panel
// opens its own, for this one run (`type=run.log&run=<id>`), and reads the kept lines again after
// each (re)connect, merging by line key, so a drop loses nothing.
import { eventsUrl, get, parseMessage } from './api.js';
import { absolute, fill, h } from './dom.js';

/** @import { RunStatus } from '../../contract/run.js' */
/** @import { LogLine, RunLogView } from '../../contract/run-log.js' */

/** @type {ReadonlySet<RunStatus | null>} */
const FINAL = new Set(['succeeded', 'failed', 'canceled']);
/** Lines shown at most (what a run keeps). */
const SHOWN = 500;

const key = (/** @type {LogLine} */ line) => `${line.attempt}:${line.i}`;
const order = (/** @type {LogLine} */ a, /** @type {LogLine} */ b) => a.attempt - b.attempt || a.i - b.i;

/** The panel: an element that the run detail places in its view and keeps across re-renders. */
export function createRunLog() {
  const list = h('ol', { class: 'log', 'data-log': '', 'aria-label': 'Log lines, oldest first' });
  const note = h('p', { class: 'small muted', 'data-log-note': '' });
  const panel = h('section', { class: 'run-log', 'aria-labelledby': 'run-log-heading' }, h('h3', { id: 'run-log-heading' }, 'Log'), note, list);
  /** @type {Map<string, LogLine>} */
  const lines = new Map();
  /** @type {string | null} */
  let runId = null;
  /** @type {WebSocket | null} */
  let socket = null;
  let dropped = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let retry;
  /** @type {RunStatus | null} */
  let status = null;

  /** @param {LogLine} line */
  function item(line) {
    return h(
      'li',
      { class: `log-line lv-${line.level}`, 'data-key': key(line), 'data-level': line.level },
      h('time', { datetime: line.at, title: absolute(line.at) }, absolute(line.at).slice(11)),
      h('span', { class: 'lv' }, line.level),
      h('span', { class: 'msg' }, line.msg),
      line.fields ? h('code', { class: 'fields' }, JSON.stringify(line.fields)) : null,
      line.attempt > 1 ? h('span', { class: 'muted small' }, ` attempt ${line.attempt}`) : null,
    );
  }

  function render() {
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    const sorted = [...lines.values()].sort(order);
    const hidden = Math.max(0, sorted.length - SHOWN);
    fill(list, sorted.slice(hidden).map(item));
    const cut = dropped + hidden;
    note.textContent =
      lines.size === 0
        ? FINAL.has(status)
          ? 'The handler logged nothing (ctx.log).'
          : 'No lines yet: what the handler writes with ctx.log shows here as it runs.'
        : cut > 0
          ? `The first ${cut} line${cut === 1 ? ' was' : 's were'} cut: a run keeps its last 500 lines or 256 KiB.`
          : `${lines.size} line${lines.size === 1 ? '' : 's'}`;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  /**
   * @param {readonly LogLine[]} batch
   * @param {number} [cutCount]
   */
  function add(batch, cutCount = 0) {
    for (const line of batch) lines.set(key(line), line);
    dropped = Math.max(dropped, cutCount);
    render();
  }

  /** @param {string} id */
  async function reload(id) {
    try {
      const log = /** @type {RunLogView} */ (await get(`/runs/${encodeURIComponent(id)}/logs`));
      if (runId !== id) return;
      status = log.status;
      dropped = log.dropped;
      add(log.lines, log.dropped);
    } catch {
      // the detail view shows errors of its own reads; a missed read is made up on reconnect
    }
  }

  /** @param {string} id */
  function connect(id) {
    const ws = new WebSocket(eventsUrl(undefined, { type: 'run.log', run: id }));
    socket = ws;
    ws.onmessage = (message) => {
      const msg = parseMessage(message);
      if (!msg) return;
      if (msg.type === 'hello') return void reload(id);
      if (msg.type === 'run.log' && msg.data?.runId === id) add(msg.data.lines, 0);
    };
    ws.onclose = () => {
      if (socket !== ws || runId !== id || FINAL.has(status)) return;
      socket = null;
      retry = setTimeout(() => connect(id), 1000);
    };
  }

  function stop() {
    clearTimeout(retry);
    const ws = socket;
    socket = null;
    ws?.close(1000, 'done');
  }

  return {
    element: panel,
    /**
     * Follows run `id` (its status tells whether more lines can come).
     * @param {string} id
     * @param {RunStatus} runStatus
     * @returns {void}
     */
    show(id, runStatus) {
      if (runId === id) return this.status(runStatus);
      stop();
      runId = id;
      status = runStatus;
      lines.clear();
      dropped = 0;
      render();
      if (FINAL.has(runStatus)) void reload(id);
      else connect(id);
    },
    /**
     * The run's status changed: once it is final, one last read and the socket closes.
     * @param {RunStatus} runStatus
     */
    status(runStatus) {
      const was = status;
      status = runStatus;
      if (FINAL.has(runStatus) && !FINAL.has(was)) {
        stop();
        void reload(/** @type {string} */ (runId));
      } else render();
    },
    hide() {
      stop();
      runId = null;
    },
  };
}
