import type { Page } from 'playwright-core';
import t from 'tap';
import { definePlugin } from '../../core/contract/plugin.js';
import { dashboard } from '../../core/server/dashboard.js';
import { useServer } from '../../core/server/server.js';
import { freshPrefix, startCluster } from '../cluster.js';
import { tempDir } from '../helpers.js';
import { startRedis } from '../redis.js';
import { launchChromium, openPage, screenshots } from './browser.js';

/**
 * The dashboard's Hosts view and the runs' host column, in a real headless Chromium, against two
 * hosts in cluster mode on a private redis-server; each host serves its own dashboard.
 */

declare const document: { querySelectorAll(selector: string): { length: number } };

t.test('Hosts view: both hosts with their heartbeats, drift when one edits a schedule; runs show the host that ran them', async (t) => {
  const redis = await startRedis(t);
  const dir = tempDir(t, 'jobhost-dash-hosts-');
  const context = await launchChromium(t, dir);
  const shot = screenshots(dir);
  const tick = (schedule: string) => definePlugin({ name: 'report', schedule, handler: () => 1 });
  const work = definePlugin({ name: 'work', handler: () => 'done' });
  const hosts = await startCluster(t, redis, 2, { prefix: freshPrefix(), plugins: [tick('0 7 * * *'), work], start: false });
  const servers = hosts.map((h) => useServer(h.host, { host: '127.0.0.1', port: 0, plugins: [dashboard] }));
  for (const h of hosts) await h.host.start();

  const page: Page & { errors: string[] } = await openPage(t, context);
  await page.goto(`${servers[0]!.url}/#/hosts`);
  await page.waitForSelector('#conn[data-state="live"]');
  await page.waitForFunction(() => document.querySelectorAll('#hosts-table tr[data-host]').length === 2);
  t.same(await page.$$eval('#hosts-table tr[data-host]', (rows) => rows.map((r) => r.getAttribute('data-host'))), ['h0', 'h1'], 'both hosts listed');
  t.match(await page.textContent('#hosts-table tr[data-host="h0"] th'), /h0 \(this one\)/);
  t.equal(await page.textContent('#hosts-table tr[data-host="h1"] a'), servers[1]!.url, "h1's API URL");
  t.equal(await page.textContent('#hosts-table tr[data-host="h1"] [data-col="jobs"]'), '2');
  t.match(await page.textContent('[data-hosts-summary]'), '2 live hosts on Redis');
  t.equal(await page.isVisible('[data-drift]'), false, 'no drift banner');
  t.equal(await page.getAttribute('[data-nav="hosts"]', 'aria-current'), 'page');

  hosts[1]!.host.register(tick('0 8 * * *'));
  await page.waitForSelector('[data-drift-job="report"]', { timeout: 15_000 });
  t.match(await page.textContent('[data-drift]'), 'Drift: report differs between h0, h1');
  await page.waitForSelector('#feed li[data-type="job.updated"] [data-ev-host]');
  t.equal(await page.textContent('#feed li[data-type="job.updated"] [data-ev-host]'), ' on h1', "h1's job.updated is in h0's live feed, naming h1");
  await shot(page, 'hosts-drift');

  // A run triggered on h1 shows h1 (or h0, whichever ran it) in the host column on h0's dashboard.
  const { runId } = await hosts[1]!.host.trigger('work');
  const ran = await hosts[1]!.host.wait(runId);
  await page.goto(`${servers[0]!.url}/#/runs`);
  await page.waitForSelector(`#runs-table tr[data-run="${runId}"] [data-col="host"]`);
  t.equal(await page.textContent(`#runs-table tr[data-run="${runId}"] [data-col="host"]`), ran.host, 'the runs list names the host that ran it');
  t.ok(ran.host === 'h0' || ran.host === 'h1');
  t.same(page.errors, [], 'no page errors');
});
