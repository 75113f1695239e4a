// @ts-check
// Charts of runs over time (GET /stats/series), drawn with uPlot: runs per bucket (succeeded,
// failed and canceled stacked), duration p50/p95, and the backlog at each bucket's end. One set
// for the whole host (on the jobs view) and one per job (on its page); they re-read the series
// when the WebSocket says a run moved, so they follow along without a reload.

import { get, withQuery } from './api.js';
import { duration, fill, h } from './dom.js';
import uPlot from './uPlot.esm.js';

/** @import { Series, SeriesBucket, SeriesWindow } from '../../contract/views.js' */

/** @type {Readonly<Record<SeriesWindow, string>>} */
export const WINDOWS = { '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days' };

/** Colours from the page's theme (the canvas cannot read CSS variables itself). */
function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (/** @type {string} */ name) => css.getPropertyValue(name).trim();
  return { good: v('--good'), bad: v('--bad'), muted: v('--muted'), text: v('--text'), line: v('--line'), accent: v('--accent'), warn: v('--warn') };
}
/** @typedef {ReturnType<typeof theme>} Theme */

/**
 * A chart of the set: its uPlot, and how it draws a series' buckets at the times `xs` (seconds).
 * @typedef {{ u: uPlot, set: (xs: number[], buckets: SeriesBucket[]) => void }} Chart
 */

const HEIGHT = 170;

/**
 * y from 0, and at least 1 high, so an empty chart still has an axis.
 * @type {uPlot.Range.Function}
 */
const fromZero = (_u, _min, max) => [0, Math.max(1, max)];
/**
 * Durations: from 0, at least 10 ms high, with room above the highest point.
 * @type {uPlot.Range.Function}
 */
const durationRange = (_u, _min, max) => [0, Math.max(10, (max ?? 0) * 1.15)];

/**
 * Tick labels for counts: whole numbers only.
 * @type {uPlot.Axis.Values}
 */
const counts = (_u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : ''));

/**
 * What every chart of the set shares: its size, the time axis, a y axis in the theme's colours,
 * the range of y, and an empty series (x) before its own; it starts with no data.
 * @param {HTMLElement} el
 * @param {number} width
 * @param {Theme} c
 * @param {uPlot.Scale} xScale
 * @param {{ range: uPlot.Range.Function, values: uPlot.Axis.Values, series: uPlot.Series[] }} spec
 */
function plot(el, width, c, xScale, { range, values, series }) {
  const axis = { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line, width: 1 } };
  return new uPlot(
    {
      width,
      height: HEIGHT,
      scales: { x: xScale, y: { range } },
      axes: [axis, { ...axis, size: 56, values }],
      series: [{}, ...series],
    },
    [[], ...series.map(() => [])],
    el,
  );
}

/**
 * Stacked bars: each series is drawn as the running total up to it, the raw count in the legend.
 * @param {HTMLElement} el
 * @param {number} width
 * @param {Theme} c
 * @param {uPlot.Scale} xScale
 * @returns {Chart}
 */
function runsChart(el, width, c, xScale) {
  const bars = /** @type {NonNullable<typeof uPlot.paths.bars>} */ (uPlot.paths.bars)({ size: [0.85, 48], gap: 1 });
  /** @type {number[][]} */
  let raw = [[], [], []];
  /** @type {(i: number) => uPlot.Series.Value} */
  const legend = (i) => (_u, _v, _s, idx) => (idx === null || idx === undefined ? '—' : String(raw[i]?.[idx] ?? 0));
  const u = plot(el, width, c, xScale, {
    range: fromZero,
    values: counts,
    series: [
      { label: 'canceled', stroke: c.muted, fill: c.muted, paths: bars, points: { show: false }, value: legend(2) },
      { label: 'failed', stroke: c.bad, fill: c.bad, paths: bars, points: { show: false }, value: legend(1) },
      { label: 'succeeded', stroke: c.good, fill: c.good, paths: bars, points: { show: false }, value: legend(0) },
    ],
  });
  return {
    u,
    set(xs, buckets) {
      const ok = buckets.map((b) => b.succeeded);
      const failed = buckets.map((b) => b.failed);
      const canceled = buckets.map((b) => b.canceled);
      raw = [ok, failed, canceled];
      const bad = ok.map((n, i) => n + (failed[i] ?? 0));
      const all = bad.map((n, i) => n + (canceled[i] ?? 0));
      // An empty bucket draws nothing (a 0-high bar would still draw its outline).
      const drawn = (/** @type {number[]} */ values) => values.map((v) => (v === 0 ? null : v));
      u.setData([xs, drawn(all), drawn(bad), drawn(ok)]);
    },
  };
}

/** @type {uPlot.Series.Value} */
const durationValue = (_u, v) => (v === null ? '—' : duration(v));

/**
 * @param {HTMLElement} el
 * @param {number} width
 * @param {Theme} c
 * @param {uPlot.Scale} xScale
 * @returns {Chart}
 */
function durationChart(el, width, c, xScale) {
  const u = plot(el, width, c, xScale, {
    range: durationRange,
    values: (_u, vals) => vals.map((v) => duration(v)),
    series: [
      // Points too: a bucket between empty ones has no line to draw.
      { label: 'p50', stroke: c.accent, width: 2, spanGaps: false, points: { show: true, size: 5 }, value: durationValue },
      { label: 'p95', stroke: c.warn, width: 2, dash: [6, 4], spanGaps: false, points: { show: true, size: 5 }, value: durationValue },
    ],
  });
  return { u, set: (xs, buckets) => u.setData([xs, buckets.map((b) => b.p50Ms), buckets.map((b) => b.p95Ms)]) };
}

/**
 * @param {HTMLElement} el
 * @param {number} width
 * @param {Theme} c
 * @param {uPlot.Scale} xScale
 * @returns {Chart}
 */
function queueChart(el, width, c, xScale) {
  const u = plot(el, width, c, xScale, {
    range: fromZero,
    values: counts,
    series: [
      {
        label: 'waiting',
        stroke: c.text,
        fill: `${c.accent}33`,
        width: 2,
        paths: /** @type {NonNullable<typeof uPlot.paths.stepped>} */ (uPlot.paths.stepped)({ align: 1 }),
        points: { show: true, size: 4 },
        spanGaps: false,
      },
    ],
  });
  return { u, set: (xs, buckets) => u.setData([xs, buckets.map((b) => b.queued)]) };
}

/**
 * A set of the three charts in `root` for the host (`job` null) or one job. `read()` gives what
 * the charts hold now (for people at the console, and the browser tests).
 * @param {HTMLElement} root
 * @param {{ onError: (err: unknown) => void }} options
 */
export function createCharts(root, { onError }) {
  /** @type {string | null} */
  let job = null;
  /** @type {SeriesWindow} */
  let window = '1h';
  /** @type {{ series: Series, window: SeriesWindow, job: string | null } | null} */
  let last = null;
  /** @type {Record<'runs' | 'durations' | 'queued', Chart> | null} */
  let charts = null;
  /** @type {Promise<unknown> | null} */
  let loading = null;
  /** Half a bucket (in seconds) of room at each end of the time axis, so the first and last bars are whole. */
  let halfBucket = 30;
  /** @type {uPlot.Scale} */
  const xScale = { time: true, range: (_u, min, max) => [min - halfBucket, max + halfBucket] };

  const picker = h(
    'div',
    { class: 'window-picker', role: 'group', 'aria-label': 'Time window' },
    Object.entries(WINDOWS).map(([value, label]) =>
      h(
        'button',
        {
          type: 'button',
          'data-window': value,
          'aria-pressed': value === window ? 'true' : 'false',
          title: label,
          onclick: () => setWindow(/** @type {SeriesWindow} */ (value)),
        },
        value,
      ),
    ),
  );
  const summary = h('p', { class: 'small muted', 'data-chart-summary': '' });
  const panels = {
    runs: h('figure', { class: 'chart', 'data-chart': 'runs' }, h('figcaption', {}, 'Runs finished per bucket')),
    durations: h('figure', { class: 'chart', 'data-chart': 'durations' }, h('figcaption', {}, 'Duration p50 / p95')),
    queued: h('figure', { class: 'chart', 'data-chart': 'queued' }, h('figcaption', {}, 'Runs waiting at the end of each bucket')),
  };
  fill(root, h('div', { class: 'chart-head' }, picker, summary), h('div', { class: 'charts' }, panels.runs, panels.durations, panels.queued));

  /** Each chart as wide as its own panel (the runs chart spans two). */
  const widthOf = (/** @type {HTMLElement} */ panel) => Math.max(240, panel.clientWidth - 18);

  function build() {
    const c = theme();
    charts = {
      runs: runsChart(panels.runs, widthOf(panels.runs), c, xScale),
      durations: durationChart(panels.durations, widthOf(panels.durations), c, xScale),
      queued: queueChart(panels.queued, widthOf(panels.queued), c, xScale),
    };
    return charts;
  }

  /** @param {SeriesWindow} value */
  function setWindow(value) {
    window = value;
    for (const b of picker.querySelectorAll('button')) b.setAttribute('aria-pressed', b.dataset.window === value ? 'true' : 'false');
    void load();
  }

  async function load() {
    const current = (loading = get(withQuery('/stats/series', { window, job })));
    /** @type {Series} */
    let series;
    try {
      series = /** @type {Series} */ (await current);
    } catch (err) {
      if (current === loading) onError(err);
      return;
    }
    if (current !== loading) return;
    // What is drawn, read back by read(): the window and job asked for may already be newer.
    last = { series, window, job };
    const drawn = charts ?? build();
    const xs = series.buckets.map((b) => Date.parse(b.start) / 1000);
    halfBucket = series.bucketMs / 2000;
    for (const chart of Object.values(drawn)) chart.set(xs, series.buckets);
    const total = (/** @type {'succeeded' | 'failed' | 'canceled'} */ k) => series.buckets.reduce((n, b) => n + b[k], 0);
    summary.textContent = `${WINDOWS[window]}: ${total('succeeded')} succeeded, ${total('failed')} failed, ${total('canceled')} canceled`;
  }

  const resize = new ResizeObserver(() => {
    if (!charts) return;
    for (const [name, chart] of /** @type {Array<[keyof typeof panels, Chart]>} */ (Object.entries(charts))) {
      const width = widthOf(panels[name]);
      if (chart.u.width !== width) chart.u.setSize({ width, height: HEIGHT });
    }
  });
  resize.observe(root);

  return {
    /**
     * Shows the charts of the host (`null`) or one job.
     * @param {string | null} name
     */
    show(name) {
      job = name;
      return load();
    },
    refresh: load,
    get window() {
      return window;
    },
    /** The series last drawn and the data each chart holds. */
    read() {
      if (!charts || !last) return null;
      return { window: last.window, job: last.job, series: last.series, data: Object.fromEntries(Object.entries(charts).map(([k, c]) => [k, c.u.data])) };
    },
  };
}
