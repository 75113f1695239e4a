// @ts-check
// Small DOM helpers. Everything the host sends is put in as text, never as markup.

/**
 * What `h()` and `fill()` take as children: nodes, text, nothing, or lists of them, nested (a list
 * is spelled as an object type: a JSDoc type alias cannot name itself in `Child[]`).
 * @typedef {Node | string | number | null | undefined | false | { readonly [i: number]: Child, readonly length: number }} Child
 */

/**
 * The props of `h()`: attributes and properties by name, listeners as `on<event>`; the common
 * listeners are typed so their handlers are checked too.
 * @typedef {{
 *   [name: string]: unknown,
 *   onclick?: (e: MouseEvent & { currentTarget: HTMLButtonElement }) => unknown,
 *   onchange?: (e: Event & { target: HTMLInputElement }) => unknown,
 * }} Props
 */

/**
 * `h('a', { href: '#/runs', class: 'x', onclick: fn, 'aria-label': 'y' }, 'text', child)`.
 * Props starting with `on` are listeners; `hidden`, `disabled`, `checked` and `value` are properties;
 * the rest are attributes (skipped when null, undefined or false).
 */
/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    else if (key === 'hidden' || key === 'disabled' || key === 'checked' || key === 'value')
      /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (el))[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {Child[]} children
 */
function append(el, children) {
  for (const child of /** @type {unknown[]} */ (children.flat(Infinity))) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replaces an element's children.
 * @template {Element} E
 * @param {E} el
 * @param {...Child} children
 * @returns {E}
 */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Replaces `old` with `next`; if focus was inside `old`, it moves to the element of `next` with
 * the same `data-focus` key, so a live update does not throw a keyboard user out of the row.
 * @param {Element} old
 * @param {Element} next
 */
export function swap(old, next) {
  const focused = old.contains(document.activeElement) ? document.activeElement?.getAttribute('data-focus') : null;
  old.replaceWith(next);
  if (focused) /** @type {HTMLElement | null} */ (next.querySelector(`[data-focus="${CSS.escape(focused)}"]`))?.focus();
}

/** @type {Readonly<Record<string, string>>} */
const ICONS = {
  queued: '◷',
  running: '▶',
  succeeded: '✓',
  failed: '✕',
  canceled: '⊘',
  disabled: '⏸',
  paused: '⏸',
  enabled: '●',
  // deliveries of notifications
  pending: '◷',
  retrying: '↻',
  delivered: '✓',
  dead: '✕',
  // alert rules
  alert: '⚠',
  recovered: '↺',
  slow: '⏱',
  missed: '⌛',
};

/**
 * A status as text plus colour plus a glyph (the text alone carries the meaning).
 * @param {string} status
 */
export function badge(status, label = status) {
  return h('span', { class: `badge s-${status}` }, h('span', { 'aria-hidden': 'true' }, ICONS[status] ?? '•'), ' ', label);
}

/** @type {ReadonlyArray<[number, string]>} */
const units = [
  [86_400_000, 'd'],
  [3_600_000, 'h'],
  [60_000, 'm'],
  [1000, 's'],
];

/**
 * `in 4m`, `12s ago`, `now`.
 * @param {string} iso
 */
export function relative(iso, now = Date.now()) {
  const diff = Date.parse(iso) - now;
  const abs = Math.abs(diff);
  if (abs < 1000) return 'now';
  for (const [size, unit] of units) {
    if (abs >= size) {
      const n = Math.floor(abs / size);
      return diff > 0 ? `in ${n}${unit}` : `${n}${unit} ago`;
    }
  }
  return 'now';
}

/**
 * `2026-01-05 12:00:03` in the browser's zone.
 * @param {string} iso
 */
export function absolute(iso) {
  const d = new Date(iso);
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * A `<time>` showing the relative time, the exact one in its title; kept fresh by `tick()`.
 * @param {string | null | undefined} iso
 */
export function time(iso, empty = '—') {
  if (!iso) return h('span', { class: 'muted' }, empty);
  return h('time', { datetime: iso, title: absolute(iso), 'data-rel': '' }, relative(iso));
}

/**
 * Refreshes every relative time on the page.
 * @param {ParentNode} root
 */
export function tick(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time[data-rel]')) el.textContent = relative(/** @type {string} */ (el.getAttribute('datetime')), now);
}

/**
 * `850ms`, `3.2s`, `4m 05s`.
 * @param {number | null | undefined} ms
 */
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return m < 60 ? `${m}m ${String(s).padStart(2, '0')}s` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/**
 * JSON for people: pretty, and `—` for nothing.
 * @param {unknown} value
 */
export function json(value) {
  if (value === undefined || value === null) return '—';
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/**
 * Calls `fn` once, `ms` after the first of a burst of calls with the same key.
 * @returns {(key: string, ms: number, fn: () => unknown) => void}
 */
export function coalescer() {
  /** @type {Map<string, ReturnType<typeof setTimeout>>} */
  const timers = new Map();
  return (key, ms, fn) => {
    if (timers.has(key)) return;
    timers.set(
      key,
      setTimeout(() => {
        timers.delete(key);
        fn();
      }, ms),
    );
  };
}
