import type { Page } from 'playwright-core';
import t from 'tap';
import type { JobContext } from '../../core/contract/plugin.js';
import { gate, type Tap, tempDir } from '../helpers.js';
import { type DashboardHost, launchChromium, openPage, pluginSource, screenshots, startDashboardHost } from './browser.js';

/**
 * The charts, run logs and bulk actions of the dashboard, in a real headless Chromium against a
 * real host (plugins directory, disk store, real clock, HTTP and WebSocket on 127.0.0.1). The
 * charts are checked by the data uPlot holds, not by pixels; screenshots are kept in SHOTS_DIR
 * (DASHBOARD_SHOTS, or jobhost-dashboard-shots under the OS temp dir) for people to look at.
 */

const OK = pluginSource(`{ name: 'ok-job', description: 'Always works', handler: () => ({ ok: true }) }`);
const FLAKY = pluginSource(`{
  name: 'flaky',
  description: 'Fails when asked',
  params: z.object({ fail: z.boolean().default(true) }),
  handler: (ctx) => { if (ctx.params.fail) throw new Error('it broke'); return 'fine'; },
}`);
const FILES = { 'ok-job.ts': OK, 'flaky.ts': FLAKY };

const shared = tempDir(t, 'jobhost-dash-insight-');
const context = await launchChromium(t, shared);
const shot = screenshots(shared);

type ChartRead = {
  window: string;
  job: string | null;
  series: { buckets: Array<{ succeeded: number; failed: number; canceled: number; queued: number | null; p50Ms: number | null }> };
  data: { runs: Array<Array<number | null>>; durations: Array<Array<number | null>>; queued: Array<Array<number | null>> };
} | null;

// Page code runs as strings or small functions: the tests compile without the DOM's types.
declare const window: { jobhostDashboard: { charts(): { overview: ChartRead; job: ChartRead } } };
declare const document: { querySelectorAll(selector: string): { length: number } };
const charts = (page: Page) => page.evaluate(() => window.jobhostDashboard.charts());
/** Sums of what the runs chart holds: its series are stacked (succeeded, + failed, + canceled). */
const sum = (values: Array<number | null> | undefined): number => (values ?? []).reduce<number>((n, v) => n + (v ?? 0), 0);
function totals(read: ChartRead): { succeeded: number; failed: number; canceled: number } {
  const [, all, bad, ok] = read!.data.runs;
  return { succeeded: sum(ok), failed: sum(bad) - sum(ok), canceled: sum(all) - sum(bad) };
}
const live = (page: Page) => page.waitForSelector('#conn[data-state="live"]');

/** A tab on the dashboard, live; `problems` collects page errors and console errors (a CSP violation shows there). */
async function open(t: Tap, host: DashboardHost, hash = ''): Promise<Page & { problems: string[] }> {
  const page = await openPage(t, context);
  const problems = page.errors;
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  await page.goto(`${host.url}/${hash}`);
  await live(page);
  return Object.assign(page, { problems });
}

t.test('the charts show runs that succeeded and failed, and a new run moves them without a reload', async (t) => {
  const dash = await startDashboardHost(t, FILES);
  const { host } = dash;
  for (let i = 0; i < 3; i++) await host.wait((await host.trigger('ok-job')).runId);
  for (let i = 0; i < 2; i++) await host.wait((await host.trigger('flaky')).runId);
  const page = await open(t, dash);
  await page.waitForFunction(() => window.jobhostDashboard.charts().overview !== null);
  const first = (await charts(page)).overview;
  t.equal(first!.window, '1h');
  t.equal(first!.data.runs[0]!.length, 60, 'a bucket a minute for the last hour');
  t.same(totals(first), { succeeded: 3, failed: 2, canceled: 0 });
  t.ok(
    first!.data.durations[1]!.some((v) => v !== null),
    'p50 has a value where runs finished',
  );
  t.match(await page.textContent('[data-charts="overview"] [data-chart-summary]'), /3 succeeded, 2 failed/);
  await page.evaluate('window.mark = 42');

  await host.wait((await host.trigger('ok-job')).runId);
  await page.waitForFunction(() => {
    const read = window.jobhostDashboard.charts().overview;
    return read !== null && read.series.buckets.reduce((n, b) => n + b.succeeded, 0) === 4;
  });
  t.same(totals((await charts(page)).overview), { succeeded: 4, failed: 2, canceled: 0 }, 'the new run is in the chart');
  t.ok(await page.evaluate<boolean>('window.mark === 42'), 'no reload');

  // The backlog: runs held back by a paused host wait, and the chart says how many.
  host.pause();
  await host.trigger('ok-job');
  await host.trigger('ok-job');
  await page.waitForFunction(() => window.jobhostDashboard.charts().overview?.data.queued[1]?.at(-1) === 2);
  t.pass('two runs waiting at the end of the current bucket');
  await shot(page, 'charts-overview', { fullPage: true });
  host.resume();
  await page.waitForFunction(() => window.jobhostDashboard.charts().overview?.data.queued[1]?.at(-1) === 0);

  // A job's page has the job's own charts; the window can change.
  await page.click('#jobs-table a.job-name:has-text("flaky")');
  await page.waitForFunction(() => window.jobhostDashboard.charts().job?.job === 'flaky');
  t.same(totals((await charts(page)).job), { succeeded: 0, failed: 2, canceled: 0 }, "flaky's runs only");
  await page.click('#view-job [data-window="24h"]');
  await page.waitForFunction(() => window.jobhostDashboard.charts().job?.window === '24h');
  const day = (await charts(page)).job!;
  t.equal(day.data.runs[0]!.length, 96, 'a bucket every 15 minutes');
  t.same(totals(day), { succeeded: 0, failed: 2, canceled: 0 });
  await shot(page, 'charts-job', { fullPage: true });
  t.same(page.problems, [], 'no page or console errors');
});

t.test("a handler's log lines appear in the run's detail while it runs", async (t) => {
  const dash = await startDashboardHost(t, FILES);
  const { host } = dash;
  const steps = [gate(), gate()];
  host.register({
    name: 'talker',
    description: 'Logs as it goes',
    async handler(ctx: JobContext) {
      ctx.log.info({ rows: 120 }, 'read the input');
      ctx.log.warn('slow disk');
      await steps[0]!.promise;
      ctx.log.info('step 2 of 3');
      await steps[1]!.promise;
      ctx.log.error({ code: 'E_LATE' }, 'the last step was late');
      return { done: true };
    },
  });
  const { runId } = await host.trigger('talker');
  const page = await open(t, dash, `#/runs/${runId}`);
  await page.waitForSelector('[data-run-status="running"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-log] li').length === 2);
  t.same(await page.$$eval('[data-log] li', (lis) => lis.map((li) => li.getAttribute('data-level'))), ['info', 'warn']);
  t.match(await page.textContent('[data-log] li:first-child'), /info\s*read the input\s*\{"rows":120\}/);

  steps[0]!.open();
  await page.waitForSelector('[data-log] li:has-text("step 2 of 3")');
  t.equal((await host.run(runId))?.status, 'running', 'the line showed while the run was still running');
  t.ok(await page.isVisible('[data-run-status="running"]'));
  await shot(page, 'run-log-live', { fullPage: true });

  steps[1]!.open();
  await page.waitForSelector('[data-run-status="succeeded"]');
  await page.waitForSelector('[data-log] li[data-level="error"]:has-text("the last step was late")');
  t.equal(await page.locator('[data-log] li').count(), 4, 'each line once');
  t.match(await page.textContent('[data-log-note]'), /4 lines/);
  await shot(page, 'run-log-done', { fullPage: true });
  t.same(page.problems, [], 'no page or console errors');
});

t.test('bulk retry from the dashboard says the count first and requeues exactly the failed runs it said', async (t) => {
  const dash = await startDashboardHost(t, FILES);
  const { host } = dash;
  const failed: string[] = [];
  for (let i = 0; i < 3; i++) failed.push((await host.wait((await host.trigger('flaky')).runId)).id);
  await host.wait((await host.trigger('flaky', { params: { fail: false } })).runId);
  await host.wait((await host.trigger('ok-job')).runId);
  const page = await open(t, dash, '#/jobs/flaky');
  await page.waitForFunction(() => window.jobhostDashboard.charts().job?.job === 'flaky');

  await page.click('#view-job button[data-bulk="retry"]');
  await page.waitForSelector('#bulk-dialog[open]');
  t.match(await page.textContent('#bulk-dialog [data-bulk-text]'), /Retry 3 failed runs of flaky that ended in the last hour\?/);
  t.equal(await page.textContent('#bulk-dialog [data-bulk-confirm]'), 'Retry 3 failed runs');
  const listed = await page.$$eval('#bulk-dialog [data-bulk-list] li', (lis) => lis.map((li) => (li.textContent ?? '').split(' ')[0]));
  t.same(listed, failed, 'the dialog names the runs it counted');
  await shot(page, 'bulk-retry-confirm');

  // A failure after the count: the confirmed action must not take it.
  const late = (await host.wait((await host.trigger('flaky')).runId)).id;
  await page.click('#bulk-dialog [data-bulk-confirm]');
  await page.waitForSelector('#bulk-dialog', { state: 'hidden' });
  await page.waitForSelector('#view-job [data-bulk-status]:has-text("Retried 3 failed runs.")');

  const replays = (await host.runs({ job: 'flaky', limit: 100 })).items.filter((r) => r.source === 'retry');
  t.same(replays.map((r) => r.retryOf).sort(), [...failed].sort(), 'exactly the three it said, each once');
  t.notOk(
    replays.some((r) => r.retryOf === late),
    'not the later failure',
  );
  for (const r of replays) await host.wait(r.id);
  // The replays failed too (the job always does): the chart follows, 3 + 1 late + 3 replays.
  await page.waitForFunction(() => window.jobhostDashboard.charts().job?.series.buckets.reduce((n, b) => n + b.failed, 0) === 7);
  await shot(page, 'bulk-retry-done', { fullPage: true });

  // Again: only the late failure and the three replays (they failed too) are left to retry; the first three are done.
  await page.click('#view-job button[data-bulk="retry"]');
  await page.waitForSelector('#bulk-dialog[open]');
  t.match(await page.textContent('#bulk-dialog [data-bulk-text]'), /Retry 4 failed runs/);
  await page.click('#bulk-dialog [data-close]');
  await page.waitForSelector('#bulk-dialog', { state: 'hidden' });
  t.equal(await page.evaluate<string>('document.activeElement.dataset.bulk'), 'retry', 'focus returns to the button');
  t.same(page.problems, [], 'no page or console errors');
});

t.test('cancel queued runs from a job page, with the count first', async (t) => {
  const dash = await startDashboardHost(t, FILES);
  const { host } = dash;
  host.pause();
  const queued: string[] = [];
  for (let i = 0; i < 2; i++) queued.push((await host.trigger('ok-job')).runId);
  const page = await open(t, dash, '#/jobs/ok-job');
  await page.waitForSelector('#view-job [data-job-counts]:has-text("2 queued")');
  await page.click('#view-job button[data-bulk="cancel"]');
  await page.waitForSelector('#bulk-dialog[open]');
  t.match(await page.textContent('#bulk-dialog [data-bulk-text]'), /Cancel 2 queued runs of ok-job/);
  await page.click('#bulk-dialog [data-bulk-confirm]');
  await page.waitForSelector('#view-job [data-bulk-status]:has-text("Canceled 2 queued runs.")');
  for (const id of queued) t.equal((await host.run(id))?.status, 'canceled');
  await page.waitForSelector('#view-job [data-job-counts]:has-text("2 canceled")');
  t.same(page.problems, [], 'no page or console errors');
});
