// Charts of runs over time (GET /stats/series), drawn with uPlot: runs per bucket (succeeded,
// failed and canceled stacked), duration p50/p95, and the backlog at each bucket's end. One set
// for the whole host (on the jobs view) and one per job (on its page); they re-read the series
// when the WebSocket says a run moved, so they follow along without a reload.

import { get, withQuery } from './api.js';
import { duration, fill, h } from './dom.js';
import uPlot from './uPlot.esm.js';

export const WINDOWS = { '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days' };

/** Colours from the page's theme (the canvas cannot read CSS variables itself). */
function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { good: v('--good'), bad: v('--bad'), muted: v('--muted'), text: v('--text'), line: v('--line'), accent: v('--accent'), warn: v('--warn') };
}

const HEIGHT = 170;

/** y from 0, and at least 1 high, so an empty chart still has an axis. */
const fromZero = (_u, _min, max) => [0, Math.max(1, max)];
/** Durations: from 0, at least 10 ms high, with room above the highest point. */
const durationRange = (_u, _min, max) => [0, Math.max(10, (max ?? 0) * 1.15)];

/** Tick labels for counts: whole numbers only. */
const counts = (_u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : ''));

function axes(c, yValues) {
  const axis = { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line, width: 1 } };
  return [axis, { ...axis, size: 56, values: yValues }];
}

/** Stacked bars: each series is drawn as the running total up to it, the raw count in the legend. */
function runsChart(el, width, c, xScale) {
  const bars = uPlot.paths.bars({ size: [0.85, 48], gap: 1 });
  let raw = [[], [], []];
  const legend = (i) => (_u, _v, _s, idx) => (idx === null || idx === undefined ? '—' : String(raw[i][idx] ?? 0));
  const u = new uPlot(
    {
      width,
      height: HEIGHT,
      scales: { x: xScale, y: { range: fromZero } },
      axes: axes(c, counts),
      series: [
        {},
        { label: 'canceled', stroke: c.muted, fill: c.muted, paths: bars, points: { show: false }, value: legend(2) },
        { label: 'failed', stroke: c.bad, fill: c.bad, paths: bars, points: { show: false }, value: legend(1) },
        { label: 'succeeded', stroke: c.good, fill: c.good, paths: bars, points: { show: false }, value: legend(0) },
      ],
    },
    [[], [], [], []],
    el,
  );
  return {
    u,
    set(xs, buckets) {
      raw = [buckets.map((b) => b.succeeded), buckets.map((b) => b.failed), buckets.map((b) => b.canceled)];
      const ok = raw[0];
      const bad = ok.map((n, i) => n + raw[1][i]);
      const all = bad.map((n, i) => n + raw[2][i]);
      // An empty bucket draws nothing (a 0-high bar would still draw its outline).
      const drawn = (values) => values.map((v) => (v === 0 ? null : v));
      u.setData([xs, drawn(all), drawn(bad), drawn(ok)]);
    },
  };
}

function durationChart(el, width, c, xScale) {
  const u = new uPlot(
    {
      width,
      height: HEIGHT,
      scales: { x: xScale, y: { range: durationRange } },
      axes: axes(c, (_u, vals) => vals.map((v) => duration(v))),
      series: [
        {},
        // Points too: a bucket between empty ones has no line to draw.
        { label: 'p50', stroke: c.accent, width: 2, spanGaps: false, points: { show: true, size: 5 }, value: (_u, v) => (v === null ? '—' : duration(v)) },
        {
          label: 'p95',
          stroke: c.warn,
          width: 2,
          dash: [6, 4],
          spanGaps: false,
          points: { show: true, size: 5 },
          value: (_u, v) => (v === null ? '—' : duration(v)),
        },
      ],
    },
    [[], [], []],
    el,
  );
  return { u, set: (xs, buckets) => u.setData([xs, buckets.map((b) => b.p50Ms), buckets.map((b) => b.p95Ms)]) };
}

function queueChart(el, width, c, xScale) {
  const u = new uPlot(
    {
      width,
      height: HEIGHT,
      scales: { x: xScale, y: { range: fromZero } },
      axes: axes(c, counts),
      series: [
        {},
        {
          label: 'waiting',
          stroke: c.text,
          fill: `${c.accent}33`,
          width: 2,
          paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: true, size: 4 },
          spanGaps: false,
        },
      ],
    },
    [[], []],
    el,
  );
  return { u, set: (xs, buckets) => u.setData([xs, buckets.map((b) => b.queued)]) };
}

/**
 * A set of the three charts in `root` for the host (`job` null) or one job. `read()` gives what
 * the charts hold now (for people at the console, and the browser tests).
 */
export function createCharts(root, { onError }) {
  let job = null;
  let window = '1h';
  let last = null;
  let charts = null;
  let loading = null;
  /** Half a bucket (in seconds) of room at each end of the time axis, so the first and last bars are whole. */
  let halfBucket = 30;
  const xScale = { time: true, range: (_u, min, max) => [min - halfBucket, max + halfBucket] };

  const picker = h(
    'div',
    { class: 'window-picker', role: 'group', 'aria-label': 'Time window' },
    Object.entries(WINDOWS).map(([value, label]) =>
      h(
        'button',
        { type: 'button', 'data-window': value, 'aria-pressed': value === window ? 'true' : 'false', title: label, onclick: () => setWindow(value) },
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
  const widthOf = (panel) => Math.max(240, panel.clientWidth - 18);

  function build() {
    const c = theme();
    charts = {
      runs: runsChart(panels.runs, widthOf(panels.runs), c, xScale),
      durations: durationChart(panels.durations, widthOf(panels.durations), c, xScale),
      queued: queueChart(panels.queued, widthOf(panels.queued), c, xScale),
    };
  }

  function setWindow(value) {
    window = value;
    for (const b of picker.querySelectorAll('button')) b.setAttribute('aria-pressed', b.dataset.window === value ? 'true' : 'false');
    void load();
  }

  async function load() {
    const current = (loading = get(withQuery('/stats/series', { window, job })));
    let series;
    try {
      series = await current;
    } catch (err) {
      if (current === loading) onError(err);
      return;
    }
    if (current !== loading) return;
    // What is drawn, read back by read(): the window and job asked for may already be newer.
    last = { series, window, job };
    if (!charts) build();
    const xs = series.buckets.map((b) => Date.parse(b.start) / 1000);
    halfBucket = series.bucketMs / 2000;
    for (const chart of Object.values(charts)) chart.set(xs, series.buckets);
    const total = (k) => series.buckets.reduce((n, b) => n + b[k], 0);
    summary.textContent = `${WINDOWS[window]}: ${total('succeeded')} succeeded, ${total('failed')} failed, ${total('canceled')} canceled`;
  }

  const resize = new ResizeObserver(() => {
    if (!charts) return;
    for (const [name, chart] of Object.entries(charts)) {
      const width = widthOf(panels[name]);
      if (chart.u.width !== width) chart.u.setSize({ width, height: HEIGHT });
    }
  });
  resize.observe(root);

  return {
    /** Shows the charts of the host (`null`) or one job. */
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
