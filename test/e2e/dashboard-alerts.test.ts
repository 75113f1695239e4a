import { appendFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigInput } from '../../core/contract/config.js';
import { silentLogger } from '../../core/contract/logger.js';
import { definePlugin } from '../../core/contract/plugin.js';
import { createHost } from '../../core/engine/host.js';
import { dashboard } from '../../core/server/dashboard.js';
import { useServer } from '../../core/server/server.js';
import { type Tap, tempDir } from '../helpers.js';
import { httpReceiver } from '../receivers.js';
import { launchChromium, openPage, screenshots } from './browser.js';

/**
 * The dashboard shows where a job's alert rules stand (SPEC §12 alert rules, storm control) in a
 * real headless Chromium against a real host and a real webhook receiver: "in alert" while a
 * notified failure streak is open (jobs list and job page, live), the last recovery once a run
 * succeeds, and in the Notifications view each notification's rule, a digest's held counts and
 * the destinations storm control held a notification back from. Waits are bounded waits on page
 * state, never sleeps.
 */

/** A real host with the dashboard, one webhook destination and a job that fails while `mode.fail`; stopped when the test ends. */
async function startAlertHost(t: Tap, options: { notify: Record<string, unknown>; throttle: string | number; hook: string }) {
  const dir = tempDir(t, 'jobhost-dash-alerts-');
  mkdirSync(path.join(dir, 'data'));
  const mode = { fail: true };
  const host = createHost({
    cwd: dir,
    logger: silentLogger(),
    config: {
      store: { dir: 'data' },
      notifications: { destinations: { 'ops-hook': { kind: 'webhook', url: options.hook } }, throttle: options.throttle },
    } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'flaky-sync',
        isolation: 'inline',
        notify: { title: 'Flaky sync', to: ['ops-hook'], ...options.notify },
        handler: () => {
          if (mode.fail) throw new Error('upstream down');
          return 'synced';
        },
      }),
    ],
  });
  const server = useServer(host, { host: '127.0.0.1', port: 0, plugins: [dashboard] });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  const context = await launchChromium(t, dir);
  const page = await openPage(t, context);
  /** One run of the job, to its end. */
  const run = async (): Promise<string> => {
    const { runId } = await host.trigger('flaky-sync');
    await host.wait(runId);
    return runId;
  };
  return { host, page, url: server.url!, mode, run, shot: screenshots(dir) };
}

const row = '#jobs-table tr[data-job="flaky-sync"]';
const head = '#view-job [data-job-head]';

t.test('in alert from the second failure on (after: 2), on the jobs list and the job page, live; then the recovery', async (t) => {
  const hook = await httpReceiver(t);
  const { page, url, mode, run, shot } = await startAlertHost(t, {
    notify: { on: ['failed', 'recovered'], after: 2 },
    throttle: 0,
    hook: hook.url,
  });
  await page.goto(`${url}/#/jobs`);
  await page.waitForSelector('#conn[data-state="live"]');
  await page.waitForSelector(row);
  t.equal(await page.locator(`${row} [data-alert]`).count(), 0, 'no alert before any run');

  // One failure is below `after`: not in alert, nothing sent.
  const first = await run();
  await page.waitForSelector(`${row} [data-col="last"] a[href="#/runs/${first}"]`);
  t.equal(await page.locator(`${row} [data-alert]`).count(), 0, 'one failure: not in alert (after: 2)');
  t.equal(hook.received.length, 0, 'no notification for the first failure');

  // The second failure opens the alert: the list shows it without a reload.
  await run();
  await page.waitForSelector(`${row} [data-alert]`);
  t.equal((await page.textContent(`${row} [data-alert]`))!.trim(), '⚠ in alert · 2 failed in a row', 'the badge with the streak');
  await hook.count(1);
  await shot(page, 'alerts-jobs-in-alert');

  // The job page says it too, and follows a third failure live.
  await page.click(`${row} a.job-name`);
  await page.waitForSelector(`${head} h2 [data-alert]`);
  t.match(await page.textContent(`${head} h2 [data-alert]`), /in alert · 2 failed in a row/);
  t.match(await page.textContent(`${head} [data-alert-state="open"]`), /in alert · 2 failed in a row/, 'the Alert fact');
  t.equal(await page.locator(`${head} [data-recovered]`).count(), 0, 'no recovery yet');
  t.equal(await page.locator(`${head} [data-missed]`).count(), 0, 'no schedule, no missed fire');
  await run();
  await page.waitForSelector(`${head} h2 [data-alert]:has-text("3 failed in a row")`);
  await hook.count(2);
  await shot(page, 'alerts-job-in-alert', { fullPage: true });

  // A success ends it: the badge goes, the recovery shows, from the event and after a reload (GET /notifications).
  mode.fail = false;
  const good = await run();
  await page.waitForSelector(`${head} [data-recovered]`);
  await page.waitForSelector(`${head} [data-alert-state="closed"]`);
  t.equal(await page.locator(`${head} [data-alert]`).count(), 0, 'no badge once recovered');
  t.match(await page.textContent(`${head} [data-recovered]`), /^↺ recovered (now|\ds ago) after 3 failures · /, 'when, and after how many failures');
  t.equal(await page.getAttribute(`${head} [data-recovered] a`, 'href'), `#/runs/${good}`, 'the run that recovered');
  t.match(await page.textContent(`${head} [data-alert-state]`), /not in alert/);
  await hook.count(3);
  const recovered = hook.received[2]!.json as { rule: string; status: string };
  t.equal(recovered.rule, 'recovered', 'the receiver got the recovery');
  await shot(page, 'alerts-job-recovered', { fullPage: true });
  await page.reload();
  await page.waitForSelector(`${head} [data-recovered]`);
  t.match(await page.textContent(`${head} [data-recovered]`), /recovered (now|\ds ago) after 3 failures/, 'read again from GET /notifications');

  await page.click('#view-job a[href="#/jobs"]');
  await page.waitForSelector(`${row} [data-col="last"] a[href="#/runs/${good}"]`);
  t.equal(await page.locator(`${row} [data-alert]`).count(), 0, 'the list drops the badge');

  // The Notifications view: the recovery carries its rule's label, the plain failures none.
  await page.click('nav a[data-nav="notifications"]');
  await page.waitForSelector('#view-notifications li[data-rule="recovered"]');
  t.equal(await page.locator('#view-notifications li[data-notification]').count(), 3, 'two failures (the 2nd and 3rd) and the recovery');
  t.equal(await page.textContent('#view-notifications li[data-rule="recovered"] [data-rule-label]'), 'recovered');
  t.match(await page.textContent('#view-notifications li[data-rule="recovered"]'), /Flaky sync Recovered/);
  t.equal(await page.locator('#view-notifications li[data-rule="failed"] [data-rule-label]').count(), 0, 'a plain outcome has its badge, no extra label');
  t.equal(await page.locator('#view-notifications [data-throttled], #view-notifications [data-held]').count(), 0, 'throttle 0: nothing held back');
  await shot(page, 'alerts-notifications-recovered', { fullPage: true });
  t.same(page.errors, [], 'no page errors');
});

t.test('storm control: one message per window, and the digest says how many of what were held back', async (t) => {
  const hook = await httpReceiver(t);
  // A 3 s window: the five failures all land in the first one, and its digest comes 3 s later.
  const { page, url, run, shot } = await startAlertHost(t, { notify: { on: ['failed'] }, throttle: '3s', hook: hook.url });
  await page.goto(`${url}/#/notifications`);
  await page.waitForSelector('#conn[data-state="live"]');
  for (let i = 0; i < 5; i++) await run();
  // One message goes; the four held back from every destination are counts in the window, not cards.
  await page.waitForFunction(() => document.querySelectorAll('#view-notifications li[data-notification]').length === 1);
  await page.waitForSelector('#view-notifications li[data-rule="digest"]', { timeout: 10_000 });
  t.equal(await page.locator('#view-notifications li[data-notification]').count(), 2, 'the one message and the digest');
  t.equal(await page.locator('#view-notifications li[data-notification] [data-throttled]').count(), 0, 'no card for a notification held back from all');
  const digest = '#view-notifications li[data-rule="digest"]';
  t.equal(await page.textContent(`${digest} [data-rule-label]`), 'digest');
  t.match(
    await page.textContent(`${digest} [data-held]`),
    /^4 held back: 4 failed · from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d to /,
    'the held counts and the window',
  );
  t.equal(await page.getAttribute(`${digest} a[href^="#/jobs/"]`, 'href'), '#/jobs/flaky-sync', 'a digest links its job (it has no run)');
  await page.waitForSelector(`${digest} tr[data-destination="ops-hook"][data-status="delivered"]`);
  await hook.count(2);
  t.equal((hook.received[1]!.json as { rule: string }).rule, 'digest', 'the receiver got one message and one digest');
  await shot(page, 'alerts-notifications-digest', { fullPage: true });
  t.same(page.errors, [], 'no page errors');
});

t.test('a host alert shows the host and its condition instead of a job, when it starts and when it ends', async (t) => {
  const hook = await httpReceiver(t);
  const dir = tempDir(t, 'jobhost-dash-host-alert-');
  const data = path.join(dir, 'data');
  mkdirSync(data);
  const config = {
    store: { dir: 'data' },
    notifications: { destinations: { pager: { kind: 'webhook', url: hook.url } }, host: { to: ['pager'] } },
  } as ConfigInput;
  const plugin = definePlugin({ name: 'x', isolation: 'inline', handler: () => 1 });
  // A store with a run, then a torn line in its journal: the next start finds the damage.
  const first = createHost({ cwd: dir, logger: silentLogger(), config, plugins: [plugin] });
  await first.start();
  await first.wait((await first.trigger('x')).runId);
  await first.stop({ graceMs: 0 });
  const journal = readdirSync(data).find((f) => /^journal-\d+\.ndjson$/.test(f))!;
  appendFileSync(path.join(data, journal), '{"r":{"id":"broken"\n');

  const host = createHost({ cwd: dir, logger: silentLogger(), config, plugins: [plugin] });
  const server = useServer(host, { host: '127.0.0.1', port: 0, plugins: [dashboard] });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  const page = await openPage(t, await launchChromium(t, dir));
  await page.goto(`${server.url!}/#/notifications`);
  await page.waitForSelector('#conn[data-state="live"]');
  const started = '#view-notifications li[data-rule="host"]:has(.s-failed)';
  await page.waitForSelector(started);
  t.equal(await page.textContent(`${started} [data-rule-label]`), 'host alert');
  t.equal(await page.textContent(`${started} [data-host-alert]`), `host ${host.id} · store-damaged`, 'the host and the condition');
  t.equal(await page.locator(`${started} a[href^="#/runs/"], ${started} a[href^="#/jobs/"]`).count(), 0, 'no job or run link');

  // Acknowledged: the end of it arrives live.
  await host.ackStoreDamage();
  const ended = '#view-notifications li[data-rule="host"]:has(.s-recovered)';
  await page.waitForSelector(ended);
  t.equal(await page.textContent(`${ended} [data-host-alert]`), `host ${host.id} · store-damaged`);
  await page.waitForFunction(() => document.querySelectorAll('#view-notifications li[data-rule="host"] tr[data-status="delivered"]').length === 2);
  await screenshots(dir)(page, 'alerts-notifications-host', { fullPage: true });
  t.same(page.errors, [], 'no page errors');
});

// Page code is passed as functions the test compiles without the DOM's types: declare the little they touch.
declare const document: { querySelectorAll(selector: string): { length: number } };
