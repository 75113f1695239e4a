import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import t from 'tap';
import { type Tap, tempDir } from '../helpers.js';
import { type DashboardHost, launchChromium, openPage, pluginSource, screenshots, startDashboardHost } from './browser.js';

/**
 * The dashboard in a real headless Chromium against a real host: plugins from a directory, the
 * disk store, the real clock, HTTP and the WebSocket on 127.0.0.1. Waits are bounded waits on
 * page state, never sleeps.
 */

const PROGRESS = pluginSource(
  `{
  name: 'progress-job',
  description: 'Counts to N, reporting progress',
  schedule: { every: '15m' },
  params: z.object({
    steps: z.number().int().min(1).max(20).default(4),
    stepMs: z.number().int().min(0).max(10000).default(250),
  }),
  async handler(ctx) {
    for (let i = 1; i <= ctx.params.steps; i++) {
      await sleep(ctx.params.stepMs, undefined, { signal: ctx.signal });
      ctx.progress(i / ctx.params.steps, 'step ' + i + ' of ' + ctx.params.steps);
    }
    return { steps: ctx.params.steps };
  },
}`,
  "import { setTimeout as sleep } from 'node:timers/promises';",
);
const NIGHTLY = pluginSource(`{ name: 'nightly', description: 'Nightly report', schedule: '0 7 * * *', handler: () => ({ ok: true }) }`);
const FLAKY = pluginSource(`{
  name: 'flaky',
  description: 'Always fails',
  notify: { title: 'Flaky job', on: ['failed'], tags: ['ops'], failurePriority: 'high' },
  handler: () => { throw new Error('boom'); },
}`);
const FILES = { 'progress-job.ts': PROGRESS, 'nightly.ts': NIGHTLY, 'flaky.ts': FLAKY };
/**
 * The same jobs without schedules, for tests that count runs or events: on the real clock,
 * progress-job's 15 min (at :00, :15, :30, :45) or nightly's 07:00 would add a run whenever a test
 * crossed one.
 */
const QUIET = {
  ...FILES,
  'progress-job.ts': PROGRESS.replace("schedule: { every: '15m' },", ''),
  'nightly.ts': NIGHTLY.replace("schedule: '0 7 * * *', ", ''),
};
if (Object.values(QUIET).some((body) => body.includes('schedule'))) throw new Error('QUIET still has a scheduled job');

const shared = tempDir(t, 'jobhost-dash-browser-');
const context = await launchChromium(t, shared);
const shot = screenshots(shared);

const live = (page: Page) => page.waitForSelector('#conn[data-state="live"]');
const row = (job: string) => `#jobs-table tr[data-job="${job}"]`;
/** A mark on the window: still there later means the page was not reloaded in between. */
// Page code is passed as strings: the tests compile without the DOM's types (tsconfig has no "dom" lib).
const mark = (page: Page) => page.evaluate('window.mark = 42');
const marked = (page: Page) => page.evaluate<boolean>('window.mark === 42');
// waitForFunction needs real functions (a string would be eval'ed in the page, which its CSP
// forbids); these declare the little of the DOM they touch.
declare const document: { querySelector(selector: string): { value: number } | null; querySelectorAll(selector: string): { length: number } };
declare const location: { hash: string };
const bar = (): number | null => document.querySelector('#view-run progress')?.value ?? null;
const dash = <T>(page: Page, expr: string) => page.evaluate<T>(`window.jobhostDashboard.live.${expr}`);

/** A host with the three plugins and a page on its dashboard, its event stream live. */
async function openDashboard(t: Tap, files: Record<string, string> = QUIET): Promise<DashboardHost & { page: Awaited<ReturnType<typeof openPage>> }> {
  const host = await startDashboardHost(t, files);
  const page = await openPage(t, context);
  await page.goto(host.url);
  await live(page);
  return { ...host, page };
}

t.test('the jobs from the plugins directory appear, with schedules in words', async (t) => {
  const { page } = await openDashboard(t, FILES);
  await page.waitForSelector(row('progress-job'));
  t.same(await page.$$eval('#jobs-table tr[data-job]', (rows) => rows.map((r) => r.getAttribute('data-job'))), ['flaky', 'nightly', 'progress-job']);
  t.match(await page.textContent(`${row('nightly')} [data-col="schedule"]`), /At 07:00.*0 7 \* \* \*.*UTC/s);
  t.match(await page.textContent(`${row('progress-job')} [data-col="schedule"]`), /Every 15 minutes/);
  t.match(await page.textContent(`${row('flaky')} [data-col="schedule"]`), /trigger only/);
  t.match(await page.textContent(`${row('nightly')} [data-col="next"]`), /^in \d+[smhd]$/);
  t.match(await page.textContent('[data-stat="jobs"]'), '3 total, 3 enabled');
  t.match(await page.textContent('[data-stat="state"]'), 'running');
  t.equal(await page.getAttribute('#run-dialog', 'open'), null);
  await shot(page, 'jobs');
  t.same(page.errors, []);
});

t.test("a view's error banner leaves with the view: the next view shows its own state, not the last one's error", async (t) => {
  const { page, url } = await openDashboard(t);
  await page.goto(`${url}/#/runs?status=bogus`);
  await page.waitForSelector('#page-error:not([hidden])');
  t.match(await page.textContent('#page-error'), /INVALID_BODY/);
  await page.evaluate('location.hash = "#/jobs"');
  await page.waitForSelector(row('flaky'));
  await page.waitForSelector('#page-error', { state: 'hidden' });
  t.equal(await page.isHidden('#page-error'), true);
});

t.test('runs filtered by status: a run that leaves the status leaves the list, live', async (t) => {
  const { page, url, host } = await openDashboard(t);
  await page.goto(`${url}/#/runs?status=running`);
  await page.waitForSelector('#view-runs:not([hidden])');
  const { runId } = await host.trigger('progress-job', { params: { steps: 2, stepMs: 400 } });
  await page.waitForSelector(`#view-runs tr[data-run="${runId}"]`);
  t.equal((await host.wait(runId)).status, 'succeeded');
  await page.waitForSelector(`#view-runs tr[data-run="${runId}"]`, { state: 'detached' });
  t.match(await page.textContent('#view-runs tbody'), 'No runs match.', 'the list says it is empty');
  t.same(page.errors, []);
});

t.test('Run with params: the run goes queued → running → succeeded, the bar moves, no reload', async (t) => {
  const { host, page } = await openDashboard(t);
  await mark(page);
  host.pause(); // the run stays queued until the test lets it start: "queued" is seen for sure
  await page.click(`${row('progress-job')} button:has-text("Run")`);
  await page.waitForSelector('#run-dialog[open]');
  const prefilled = JSON.parse(await page.inputValue('#params-input')) as unknown;
  t.same(prefilled, { steps: 4, stepMs: 250 }, 'pre-filled from the JSON Schema defaults');
  t.match(await page.textContent('[data-run-help]'), /steps integer optional — ≥ 1, ≤ 20, default 4/);
  // 5 × 800 ms: a window of seconds to see the bar partway, even when Chromium is slow to paint.
  await page.fill('#params-input', JSON.stringify({ steps: 5, stepMs: 800 }));
  await page.click('#run-dialog button[type=submit]');
  await page.waitForSelector('#run-dialog', { state: 'hidden' });
  await page.waitForSelector('[data-run-status="queued"]');
  const runId = decodeURIComponent(new URL(page.url()).hash.replace('#/runs/', ''));
  t.equal((await host.run(runId))?.status, 'queued');
  t.match(await page.textContent('[data-run-params]'), /"steps": 5/);
  t.equal(await page.evaluate(bar), 0);

  host.resume();
  await page.waitForSelector('[data-run-status="running"]');
  await page.waitForFunction(() => {
    const value = document.querySelector('#view-run progress')?.value ?? 0;
    return value > 0 && value < 1;
  });
  const partway = (await page.evaluate(bar)) ?? 0;
  await shot(page, 'run-progress', { fullPage: true });
  await page.waitForFunction((before) => (document.querySelector('#view-run progress')?.value ?? 0) > before, partway);
  t.pass(`the bar moved on from ${partway}`);
  await page.waitForSelector('[data-run-status="succeeded"]');
  t.equal(await page.evaluate(bar), 1);
  t.match(await page.textContent('#view-run [data-progress]'), /100% · step 5 of 5/);
  t.match(await page.textContent('[data-run-result]'), /"steps": 5/);
  await shot(page, 'run-succeeded', { fullPage: true });
  t.equal((await host.run(runId))?.status, 'succeeded');

  await page.click('nav a[data-nav="jobs"]');
  await page.waitForSelector(`${row('progress-job')} [data-col="last"] .s-succeeded`);
  t.ok(await marked(page), 'the page was never reloaded');
  t.same(page.errors, []);
});

t.test("invalid params: the server's validation errors show inline, and no run is made", async (t) => {
  const { host, page } = await openDashboard(t);
  await page.click(`${row('progress-job')} button:has-text("Run")`);
  await page.fill('#params-input', '{ "steps": 0, "stepMs": "fast" }');
  await page.click('#run-dialog button[type=submit]');
  const errors = page.locator('[data-run-errors]');
  await errors.waitFor({ state: 'visible' });
  const text = await errors.textContent();
  t.match(text, /INVALID_PARAMS/);
  t.match(text, /steps: Too small: expected number to be >=1/);
  t.match(text, /stepMs: .*expected number/i);
  t.equal(await page.getAttribute('#params-input', 'aria-invalid'), 'true');
  t.ok(await page.isVisible('#run-dialog'), 'the editor stays open to fix the params');
  await shot(page, 'params-error');

  await page.fill('#params-input', '{ "steps": ');
  await page.click('#run-dialog button[type=submit]');
  await page.waitForSelector('[data-run-errors]:has-text("not valid JSON")');
  t.equal((await host.runs()).items.length, 0, 'nothing was triggered');
  t.same(page.errors, []);
});

t.test('disabling a job sticks across a page reload; a run of it is refused with the reason', async (t) => {
  const { host, page } = await openDashboard(t, FILES);
  await page.uncheck(`${row('nightly')} input[type=checkbox]`);
  await page.waitForSelector(`${row('nightly')}.is-disabled`);
  t.equal(host.job('nightly')?.enabled, false);
  await page.waitForSelector('[data-stat="jobs"]:has-text("2 enabled")');

  await page.reload();
  await live(page);
  await page.waitForSelector(row('nightly'));
  t.equal(await page.isChecked(`${row('nightly')} input[type=checkbox]`), false);
  t.match(await page.textContent(`${row('nightly')} [data-col="enabled"]`), 'disabled', 'disabled in words, not only by colour');
  t.match(await page.textContent(`${row('nightly')} [data-col="next"]`), 'disabled');

  await page.click(`${row('nightly')} button:has-text("Run")`);
  t.match(await page.textContent('[data-run-note]'), /disabled/);
  await page.click('#run-dialog button[type=submit]');
  await page.waitForSelector('[data-run-errors]:has-text("Not run (disabled)")');
  await page.click('#run-dialog [data-close]');

  await page.check(`${row('nightly')} input[type=checkbox]`);
  await page.waitForSelector(`${row('nightly')}:not(.is-disabled)`);
  t.equal(host.job('nightly')?.enabled, true);
  t.same(page.errors, []);
});

t.test('a plugin file dropped in adds its row without a reload; deleting it removes the row', async (t) => {
  const { pluginsDir, page } = await openDashboard(t);
  await page.waitForSelector(row('nightly'));
  await mark(page);
  const file = path.join(pluginsDir, 'dropped.ts');
  writeFileSync(file, pluginSource(`{ name: 'dropped-in', description: 'Arrived while the page was open', schedule: '*/5 * * * *', handler: () => 1 }`));
  await page.waitForSelector(row('dropped-in'));
  t.match(await page.textContent(row('dropped-in')), /Arrived while the page was open.*Every 5 minutes/s);
  await page.waitForSelector('[data-stat="jobs"]:has-text("4 total")');
  t.ok(await page.isVisible('#feed li[data-type="job.registered"]:has-text("dropped-in")'), 'the feed shows the event');
  rmSync(file);
  await page.waitForSelector(row('dropped-in'), { state: 'detached' });
  t.ok(await marked(page), 'no reload');
  t.same(page.errors, []);
});

t.test('with a token the page asks for it once, keeps it for the tab, and then works live', async (t) => {
  const token = 'dashboard-secret-token';
  const { host, url } = await startDashboardHost(t, FILES, { token });
  t.equal((await fetch(`${url}/jobs`)).status, 401, 'the API needs the token');
  t.equal((await fetch(url)).status, 200, 'the page shell does not');
  const page = await openPage(t, context);
  await page.goto(url);
  await page.waitForSelector('#token-dialog[open]');
  await page.keyboard.press('Escape');
  t.ok(await page.isVisible('#token-dialog'), 'Escape does not dismiss the prompt');
  await shot(page, 'token-prompt');
  await page.fill('#token-input', 'not-the-token');
  await page.press('#token-input', 'Enter');
  await page.waitForSelector('#token-error:has-text("not valid")');
  await page.fill('#token-input', token);
  await page.press('#token-input', 'Enter');
  // The prompt says whose token it took (server.token: the admin token) until the user goes on.
  await page.waitForSelector('[data-token-who]:visible');
  t.match(await page.textContent('[data-token-who]'), /token “admin”, role admin/);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#token-dialog', { state: 'hidden' });
  await live(page);
  await page.waitForSelector(row('nightly'));

  const { runId } = await host.trigger('nightly');
  await page.waitForSelector(`#feed li[data-type="run.succeeded"]:has-text("${runId}")`);
  t.pass('events arrive over the WebSocket with ?token=');

  await page.reload();
  await live(page);
  await page.waitForSelector(row('nightly'));
  t.equal(await page.getAttribute('#token-dialog', 'open'), null, 'not asked again in the same tab');
  t.equal(await page.evaluate<string | null>("sessionStorage.getItem('jobhost.token')"), token);

  const other = await openPage(t, context);
  await other.goto(url);
  await other.waitForSelector('#token-dialog[open]');
  t.pass('another tab asks for itself');
  t.same([...page.errors, ...other.errors], []);
});

t.test('a dropped WebSocket reconnects with since= and misses nothing', async (t) => {
  const { host, page } = await openDashboard(t);
  await page.waitForSelector(row('nightly'));
  const before = await dash<number>(page, 'lastSeq');
  // Offline, the page's reconnects fail until the test brings it back: the run below surely
  // happens while it is disconnected, however slow the machine.
  await context.setOffline(true);
  await dash(page, 'drop()');
  await page.waitForSelector('#conn[data-state="reconnecting"]');
  const { runId } = await host.trigger('nightly');
  await host.wait(runId);
  const succeededSeq = host.bus.seq;
  await page.waitForFunction(() => document.querySelector('#conn[data-state="reconnecting"]') !== null);
  t.notOk(await page.isVisible(`#feed li[data-type="run.succeeded"]:has-text("${runId}")`), 'not seen while offline');
  await context.setOffline(false);
  await page.waitForSelector(`#feed li[data-type="run.succeeded"]:has-text("${runId}")`, { timeout: 15_000 });
  const hello = await dash<{ since: number | null; seq: number; gap: boolean }>(page, 'hello');
  t.equal(hello.since, before, 'reconnected with since=<last seq seen>');
  t.equal(hello.gap, false);
  t.ok(hello.seq >= succeededSeq, 'the run happened while disconnected: its events came as the replay');
  for (const type of ['run.queued', 'run.started', 'run.succeeded']) {
    t.ok(await page.isVisible(`#feed li[data-type="${type}"]:has-text("${runId}")`), `${type} is in the feed`);
  }
  await page.waitForSelector(`${row('nightly')} [data-col="last"] .s-succeeded`);
  t.same(page.errors, []);
});

t.test("runs: filter, paging, a run's detail with Retry and Cancel; notifications with priority and tags", async (t) => {
  const { host, url } = await startDashboardHost(t, QUIET);
  for (let i = 0; i < 22; i++) await host.wait((await host.trigger('nightly')).runId);
  const failed = (await host.trigger('flaky')).runId;
  await host.wait(failed);
  const page = await openPage(t, context);
  await page.goto(`${url}/#/runs`);
  await live(page);
  await page.waitForSelector('#runs-table tbody tr[data-run]');
  t.equal(await page.locator('#runs-table tbody tr[data-run]').count(), 20, 'a page of 20');
  t.equal(await page.getAttribute('#runs-table tbody tr[data-run]:first-child', 'data-run'), failed, 'newest first');
  await page.click('[data-pager] button:has-text("Older")');
  await page.waitForSelector('[data-pager]:has-text("Page 2")');
  t.equal(await page.locator('#runs-table tbody tr[data-run]').count(), 3);
  await page.click('[data-pager] button:has-text("Newer")');
  await page.waitForSelector('[data-pager]:has-text("Page 1")');

  await page.selectOption('#runs-filter select[name=status]', 'failed');
  await page.waitForFunction(() => document.querySelectorAll('#runs-table tbody tr[data-run]').length === 1);
  t.match(await page.textContent('#runs-table tbody tr[data-run]'), /flaky.*failed/s);
  // A run that reaches the filtered status joins the list live: at its run.queued it was still
  // queued, and the filter left it out (no scheduled job here reloads the list meanwhile).
  const again = (await host.trigger('flaky')).runId;
  await host.wait(again);
  await page.waitForSelector(`#runs-table tbody tr[data-run="${again}"]`, { timeout: 10_000 });
  t.equal(await page.locator('#runs-table tbody tr[data-run]').count(), 2, 'failed runs only, the new one live');
  await shot(page, 'runs', { fullPage: true });
  await page.click(`#runs-table a:has-text("${failed}")`);
  await page.waitForSelector('[data-run-status="failed"]');
  t.match(await page.textContent('[data-run-error]'), /HANDLER_ERROR: boom/);
  await page.click('#view-run button:has-text("Retry")'); // the jobs view has a bulk "Retry failed runs…" too
  await page.waitForFunction((old) => !location.hash.endsWith(old) && document.querySelector('[data-run-status="failed"]') !== null, failed);
  t.match(await page.textContent('#view-run .facts'), new RegExp(`Source\\s*retry of ${failed}`));

  const slow = (await host.trigger('progress-job', { params: { steps: 3, stepMs: 5000 } })).runId;
  await page.goto(`${url}/#/runs/${slow}`);
  await page.waitForSelector('[data-run-status="running"]');
  await page.click('button:has-text("Cancel run")');
  await page.waitForSelector('[data-run-status="canceled"]');
  t.equal((await host.run(slow))?.status, 'canceled');

  await page.click('nav a[data-nav="notifications"]');
  await page.waitForSelector('#view-notifications li[data-notification]');
  const note = await page.textContent('#view-notifications li[data-notification]');
  t.match(note, /high priority/);
  t.match(note, /failed/);
  t.match(note, /Flaky job Failed/);
  t.match(note, /#ops/);
  await shot(page, 'notifications');
  t.same(page.errors, []);
});

t.test('narrow screen: no sideways scrolling, everything reachable by keyboard', async (t) => {
  const { host, url } = await startDashboardHost(t, FILES);
  const { runId } = await host.trigger('progress-job', { params: { steps: 2, stepMs: 0 } });
  await host.wait(runId);
  const page = await openPage(t, context);
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(url);
  await live(page);
  await page.waitForSelector(row('nightly'));
  t.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'), 'nothing wider than the screen');
  await shot(page, 'narrow-jobs');
  await page.focus(`${row('nightly')} button:has-text("Run")`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#run-dialog[open]');
  t.equal(await page.evaluate<string>('document.activeElement.id'), 'params-input', 'focus moves into the editor');
  await shot(page, 'narrow-run-dialog');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#run-dialog', { state: 'hidden' });
  t.equal(await page.evaluate<string>('document.activeElement.textContent'), 'Run…', 'focus returns to the Run button');

  await page.click('nav a[data-nav="runs"]');
  await page.waitForSelector(`#runs-table tr[data-run="${runId}"]`);
  t.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'), 'runs: nothing wider than the screen');
  await page.click(`#runs-table a:has-text("${runId}")`);
  await page.waitForSelector('[data-run-status="succeeded"]');
  t.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'), 'run detail: nothing wider than the screen');
  await shot(page, 'narrow-run', { fullPage: true });
  t.same(page.errors, []);
});

t.test("a job's page pauses and resumes it and its queue; the paused badge follows a pause made elsewhere, live", async (t) => {
  const { host, url, page } = await openDashboard(t, FILES);
  await mark(page);
  await page.goto(`${url}#/jobs/nightly`);
  await page.click('[data-pause="pause"]');
  await page.waitForSelector('[data-job-head] [data-paused]:has-text("paused")');
  await page.waitForSelector('[data-pause="resume"]:has-text("Resume")');
  t.same(host.pauses.list(), { jobs: ['nightly'], queues: [] });
  await page.click('[data-pause="resume"]');
  await page.waitForSelector('[data-pause="pause"]');
  t.equal(await page.$('[data-job-head] [data-paused]'), null, 'no badge once resumed');
  t.same(host.pauses.list(), { jobs: [], queues: [] });

  // The job's queue, from the same page: POST /queues/default/pause, then /resume.
  const ready = async () => ((await (await fetch(`${url}/ready`)).json()) as { paused: { jobs: string[]; queues: string[] } }).paused;
  t.equal(await page.textContent('[data-queue="default"]'), 'default Pause queue', 'the Queue fact names it, with its button');
  await page.click('[data-queue-pause="pause"]');
  await page.waitForSelector('[data-job-head] [data-paused]:has-text("queue paused")');
  await page.waitForSelector('[data-queue="default"] [data-queue-pause="resume"]:has-text("Resume queue")');
  t.match(await page.textContent('[data-queue="default"]'), /paused/);
  t.same(await ready(), { jobs: [], queues: ['default'] }, 'GET /ready lists the queue paused');
  const held = (await (await fetch(`${url}/jobs/progress-job`)).json()) as { paused: boolean; pause: { job: boolean; queue: boolean } };
  t.match(held, { paused: true, pause: { job: false, queue: true } }, 'another job of the queue is held by it');
  await page.click('[data-queue-pause="resume"]');
  await page.waitForSelector('[data-queue="default"] [data-queue-pause="pause"]:has-text("Pause queue")');
  t.equal(await page.$('[data-job-head] [data-paused]'), null, 'no badge once the queue resumed');
  t.same(await ready(), { jobs: [], queues: [] }, 'GET /ready lists nothing paused');

  // A queue paused through the API: the page hears queue.paused and shows the job held by its queue.
  await host.pauses.queue('default', true);
  await page.waitForSelector('[data-job-head] [data-paused]:has-text("queue paused")');
  await page.waitForSelector('[data-queue-pause="resume"]');
  t.pass('the queue button follows: Resume queue');
  await page.goto(`${url}#/jobs`);
  await page.waitForSelector(`${row('nightly')} .s-paused`);
  t.ok(await marked(page), 'no reload');
  t.same(page.errors, []);
});
