import type { Page } from 'playwright-core';
import t from 'tap';
import { matchesAny } from '../../core/contract/glob.js';
import { tempDir } from '../helpers.js';
import { launchChromium, openPage, pluginSource, screenshots, startDashboardHost } from './browser.js';

/**
 * The dashboard per role (SPEC §14), in a real headless Chromium against one host with three named
 * tokens: a viewer sees no button that would be refused, an operator sees them and its cancel is in
 * the Audit view, an operator limited to `deploy-*` sees buttons for those jobs only (and none for
 * their queue, which holds other jobs too), and the token prompt says which token and role it took.
 */

declare const document: { querySelectorAll(selector: string): { length: number } };

const TOKENS = {
  viewer: 'viewer-token-0123456789abcdef',
  operator: 'operator-token-0123456789abcdef',
  deployer: 'deployer-token-0123456789abcdef',
  temp: 'temporary-token-0123456789abcdef',
};
const FILES = {
  'deploy-web.ts': pluginSource(`{ name: 'deploy-web', description: 'Deploys the site', handler: () => 'deployed' }`),
  'cleanup.ts': pluginSource(`{ name: 'cleanup', description: 'Cleans up', handler: () => 'clean' }`),
  'report.ts': pluginSource(`{ name: 'report', description: 'Fails', handler: () => { throw new Error('no data'); } }`),
};
const HOUR = '1h';

const dir = tempDir(t, 'jobhost-dash-access-');
const context = await launchChromium(t, dir);
const shot = screenshots(dir);
const { host, url } = await startDashboardHost(t, FILES, {
  tokens: [
    { name: 'dash', token: TOKENS.viewer, role: 'viewer' },
    { name: 'ops', token: TOKENS.operator, role: 'operator' },
    { name: 'ci', token: TOKENS.deployer, role: 'operator', jobs: ['deploy-*'] },
    { name: 'temp', token: TOKENS.temp, role: 'operator' },
  ],
});
// Runs that stay queued for an hour: each run page would offer to cancel them.
const deployRun = (await host.trigger('deploy-web', { delay: HOUR })).runId;
const cleanupRun = (await host.trigger('cleanup', { delay: HOUR })).runId;

const row = (job: string) => `#jobs-table tr[data-job="${job}"]`;
const post = (path: string, token: string) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });

/** A new tab that enters `token` at the prompt; resolves with what the prompt then said. */
async function signIn(token: string): Promise<{ page: Page & { errors: string[] }; said: string }> {
  const page = await openPage(t, context);
  await page.goto(url);
  await page.waitForSelector('#token-dialog[open]');
  await page.fill('#token-input', token);
  await page.press('#token-input', 'Enter');
  await page.waitForSelector('[data-token-who]:visible');
  const said = (await page.textContent('[data-token-who]')) ?? '';
  await page.click('#token-dialog button[type=submit]');
  await page.waitForSelector('#token-dialog', { state: 'hidden' });
  await page.waitForSelector('#conn[data-state="live"]');
  await page.waitForSelector(row('cleanup'));
  return { page, said };
}

/** The buttons and switches of the page's visible view that change something (not its filters, pager or chart window). */
const actionsShown = (page: Page) =>
  page.$$eval('main [data-view]:not([hidden]) button, main [data-view]:not([hidden]) input[type=checkbox]', (els) =>
    els
      .filter((e) => !e.closest('.window-picker, form.filters, [data-more], [data-audit-refresh]'))
      .map((e) => e.textContent?.trim() || e.getAttribute('type') || '?'),
  );

t.test('a viewer: the prompt says so, no action is on the page, and the Audit view lists the changes asked', async (t) => {
  // Changes to audit: one made by the operator, two refused to the viewer.
  t.equal((await post('/jobs/cleanup/disable', TOKENS.operator)).status, 200);
  t.equal((await post('/jobs/cleanup/enable', TOKENS.operator)).status, 200);
  t.equal((await post('/jobs/deploy-web/run', TOKENS.viewer)).status, 403);
  t.equal((await post(`/runs/${cleanupRun}/cancel`, TOKENS.viewer)).status, 403);

  const { page, said } = await signIn(TOKENS.viewer);
  t.match(said, /token “dash”, role viewer: read-only/, 'the prompt says which token and role it took');
  t.match(await page.textContent('#who'), 'dash · viewer');
  t.same(await actionsShown(page), [], 'the jobs view shows no Run…, no enable switch, no bulk retry');
  t.match(await page.textContent(`${row('cleanup')} [data-col="enabled"]`), 'enabled', 'the state is shown as text');

  await page.goto(`${url}/#/jobs/deploy-web`);
  await page.waitForSelector('#view-job [data-job-counts]');
  t.same(await actionsShown(page), [], "a job's page: no Run…, no bulk actions");
  t.equal(await page.textContent('#view-job [data-queue="default"]'), 'default', 'its queue is shown, with no Pause queue');
  t.equal(await page.locator('[data-queue-pause]').count(), 0);
  await page.goto(`${url}/#/runs/${cleanupRun}`);
  await page.waitForSelector('[data-run-status="queued"]');
  t.same(await actionsShown(page), [], 'a queued run: no Cancel');

  await page.click('nav a[data-nav="audit"]');
  await page.waitForSelector('#audit-table tr[data-audit]');
  const rows = await page.$$eval('#audit-table tr[data-audit]', (trs) =>
    trs.map((tr) => ['token', 'action', 'target', 'outcome'].map((c) => tr.querySelector(`[data-col="${c}"]`)?.textContent?.trim() ?? '')),
  );
  t.same(
    rows.map((r) => r.slice(0, 3)),
    [
      ['dash', 'run.cancel', `run:${cleanupRun}`],
      ['dash', 'job.run', 'job:deploy-web'],
      ['ops', 'job.enable', 'job:cleanup'],
      ['ops', 'job.disable', 'job:cleanup'],
    ],
    'newest first: at, token, action, target',
  );
  t.match(rows[0]![3], /forbidden FORBIDDEN \(403\)/);
  t.match(rows[3]![3], /^\W*ok$/);
  t.match(await page.textContent('#audit-table tr[data-audit] [data-col="ip"]'), '127.0.0.1');
  await shot(page, 'audit-viewer', { fullPage: true });

  // Filters: by token, then by an action glob (the hash keeps them).
  await page.fill('#audit-filter [name="token"]', 'ops');
  await page.press('#audit-filter [name="token"]', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tr[data-audit]').length === 2);
  t.match(page.url(), /#\/audit\?token=ops$/);
  await page.goto(`${url}/#/audit?action=job.*&target=job:deploy-*`);
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tr[data-audit]').length === 1);
  t.equal(await page.textContent('#audit-table tr[data-audit] [data-col="action"]'), 'job.run');
  t.equal(await page.inputValue('#audit-filter [name="action"]'), 'job.*', 'the filter form shows the filters of the hash');

  // The cursor: 60 more records are more than a page; "Load more" shows the rest.
  const refused = [];
  for (let i = 0; i < 60; i++) refused.push((await post('/jobs/cleanup/run', TOKENS.viewer)).status);
  t.same(new Set(refused), new Set([403]));
  await page.goto(`${url}/#/audit?token=dash`);
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tr[data-audit]').length === 50);
  await page.click('#view-audit [data-more]');
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tr[data-audit]').length === 62);
  t.equal(await page.isVisible('#view-audit [data-more]'), false, 'no more pages');
  t.same(page.errors, [], 'no page errors');
});

t.test('an operator: every action is on the page, and its cancel shows up in the Audit view', async (t) => {
  const { page, said } = await signIn(TOKENS.operator);
  t.match(said, /token “ops”, role operator: may run, cancel/);
  t.notMatch(said, /only/, 'every job');
  for (const job of ['cleanup', 'deploy-web']) {
    t.equal(await page.locator(`${row(job)} button:has-text("Run…")`).count(), 1, `Run… for ${job}`);
    t.equal(await page.locator(`${row(job)} input[type=checkbox]`).count(), 1, `the enable switch for ${job}`);
  }
  t.equal(await page.locator('[data-bulk="retry-all"]').count(), 1, 'the bulk retry of every job');
  await page.goto(`${url}/#/jobs/cleanup`);
  await page.waitForSelector('#view-job [data-bulk="cancel"]');
  t.same(await actionsShown(page), ['Pause queue', 'Run…', 'Retry failed runs…', 'Cancel queued runs…', 'Pause'], 'Pause queue beside the queue it pauses');
  t.equal(await page.locator('#view-job [data-queue="default"] [data-queue-pause="pause"]').count(), 1);

  await page.goto(`${url}/#/runs/${cleanupRun}`);
  await page.click('[data-focus="cancel"]');
  await page.waitForSelector('[data-run-status="canceled"]');
  t.equal((await host.run(cleanupRun))?.status, 'canceled');
  await page.click('nav a[data-nav="audit"]');
  const first = '#audit-table tr[data-audit]:first-child';
  await page.waitForSelector(`${first}[data-action="run.cancel"]`);
  t.equal(await page.textContent(`${first} [data-col="token"]`), 'ops');
  t.equal(await page.textContent(`${first} [data-col="target"]`), `run:${cleanupRun}`);
  t.equal(await page.getAttribute(first, 'data-outcome'), 'ok');
  await page.click(`${first} [data-col="target"] a`);
  await page.waitForSelector('[data-run-status="canceled"]');
  t.pass('the target links to the run');
  t.same(page.errors, [], 'no page errors');
});

t.test('an operator limited to deploy-*: buttons for those jobs only', async (t) => {
  const { page, said } = await signIn(TOKENS.deployer);
  t.match(said, /token “ci”, role operator: .* of jobs deploy-\* only/);
  t.match(await page.textContent('#who'), 'ci · operator (jobs deploy-*)');
  t.equal(await page.locator(`${row('deploy-web')} button:has-text("Run…")`).count(), 1, 'Run… for deploy-web');
  t.equal(await page.locator(`${row('deploy-web')} input[type=checkbox]`).count(), 1);
  t.equal(await page.locator(`${row('cleanup')} button`).count(), 0, 'no Run… for cleanup');
  t.equal(await page.locator(`${row('cleanup')} input[type=checkbox]`).count(), 0, 'no switch for cleanup');
  await shot(page, 'jobs-limited-operator');

  await page.goto(`${url}/#/jobs/cleanup`);
  await page.waitForSelector('#view-job [data-job-counts]');
  t.same(await actionsShown(page), [], "cleanup's page: nothing");
  await page.goto(`${url}/#/jobs/deploy-web`);
  await page.waitForSelector('#view-job [data-bulk="cancel"]');
  t.same(await actionsShown(page), ['Run…', 'Retry failed runs…', 'Cancel queued runs…', 'Pause'], "deploy-web's page: all of them but Pause queue");
  // Its queue holds cleanup too: the host refuses it the queue, and the page offers no button for it.
  t.equal(await page.textContent('#view-job [data-queue="default"]'), 'default');
  t.equal(await page.locator('[data-queue-pause]').count(), 0, 'no Pause queue');
  t.equal((await post('/queues/default/pause', TOKENS.deployer)).status, 403);
  // A job that does not exist: no charts (the last job's stood under its name).
  await page.goto(`${url}/#/jobs/no-such-job`);
  await page.waitForSelector('#view-job h2:has-text("No such job")');
  t.equal(await page.locator('#view-job [data-charts="job"]').isVisible(), false, 'no charts for a job that does not exist');
  // Retry every failed run: report's are out of this token's reach, and the question says so.
  const failed = (await host.trigger('report')).runId;
  await host.wait(failed);
  await page.goto(`${url}/#/jobs`);
  await page.click('[data-bulk="retry-all"]');
  await page.waitForSelector('#bulk-dialog[open]');
  t.match(
    await page.textContent('#bulk-dialog'),
    /No failed runs of the jobs your token may act on ended .*1 failed run of report is left out: your token may not act on that job\./,
    'the runs left out are told',
  );
  await page.click('#bulk-dialog button:has-text("Close")');
  await page.goto(`${url}/#/runs/${deployRun}`);
  await page.waitForSelector('[data-focus="cancel"]');
  t.pass("deploy-web's queued run: Cancel");
  // can() of the page matches `jobs` globs as the host does (core/contract/glob.ts), special characters too.
  const names = ['deploy-web', 'deploy-', 'deploy-a.b+c', 'deploy-(1)', 'deploy', 'xdeploy-web', 'Deploy-web', 'deploy-web\nx'];
  const inPage = await page.evaluate(async (names) => {
    // The module the page already runs (same URL): its token's whoami is loaded.
    const url: string = '/assets/access.js';
    const access = (await import(url)) as { can(action: string, job?: string): boolean };
    return {
      run: names.map((n) => access.can('job.run', n)),
      ack: access.can('store.damage.ack'),
      anyRun: access.can('job.run'),
      queue: access.can('queue.pause') || access.can('queue.resume'),
    };
  }, names);
  t.same(
    inPage.run,
    names.map((n) => matchesAny(['deploy-*'], n)),
    'the same jobs as the host',
  );
  t.same([inPage.ack, inPage.anyRun], [false, true], 'not what needs an admin');
  t.equal(inPage.queue, false, 'not a queue');
  const other = (await host.trigger('cleanup', { delay: HOUR })).runId;
  await page.goto(`${url}/#/runs/${other}`);
  await page.waitForSelector('[data-run-status="queued"]');
  t.same(await actionsShown(page), [], "cleanup's queued run: no Cancel");

  // A config edit moves the token to other jobs: the open page reads GET /whoami again and follows.
  const tokens = host.config.server.tokens.map((tk) => (tk.name === 'ci' ? { ...tk, jobs: ['cleanup'] } : tk));
  const { changed, restartRequired } = host.applyConfig({ ...host.config, server: { ...host.config.server, tokens } });
  t.same(changed, ['server.tokens']);
  // What the config file watcher (core/loader/config-file.ts) announces after it applied an edit; this host has no file.
  host.bus.emit('config.reloaded', { job: null, file: 'config/jobhost.json', changed, restartRequired });
  await page.goto(`${url}/#/jobs`);
  await page.waitForSelector(`${row('cleanup')} button:has-text("Run…")`);
  t.equal(await page.locator(`${row('deploy-web')} button`).count(), 0, 'no Run… for deploy-web any more');
  t.match(await page.textContent('#who'), 'ci · operator (jobs cleanup)');
  t.same(page.errors, [], 'no page errors');
});

t.test('a token removed while its page is open: the page asks for a token again (it reconnected in silence before)', async (t) => {
  const { page } = await signIn(TOKENS.temp);
  t.match(await page.textContent('#who'), 'temp · operator');
  // The host closes the token's WebSocket (1008); the page had no HTTP request to be refused.
  const tokens = host.config.server.tokens.filter((tk) => tk.name !== 'temp');
  const { changed, restartRequired } = host.applyConfig({ ...host.config, server: { ...host.config.server, tokens } });
  t.same(changed, ['server.tokens']);
  host.bus.emit('config.reloaded', { job: null, file: 'config/jobhost.json', changed, restartRequired });
  await page.waitForSelector('#token-dialog[open]', { timeout: 15_000 });
  // Another token unlocks it, and the page goes live again as that token.
  await page.fill('#token-input', TOKENS.viewer);
  await page.press('#token-input', 'Enter');
  await page.waitForSelector('[data-token-who]:visible');
  await page.click('#token-dialog button[type=submit]');
  await page.waitForSelector('#conn[data-state="live"]');
  t.match(await page.textContent('#who'), 'dash · viewer');
  t.same(page.errors, [], 'no page errors');
});
