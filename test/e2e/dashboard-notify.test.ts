import { mkdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { type Clock, createManualClock } from '../../core/contract/clock.js';
import type { ConfigInput } from '../../core/contract/config.js';
import { silentLogger } from '../../core/contract/logger.js';
import { definePlugin } from '../../core/contract/plugin.js';
import { createHost } from '../../core/engine/host.js';
import { dashboard } from '../../core/server/dashboard.js';
import { useServer } from '../../core/server/server.js';
import { type Tap, tempDir } from '../helpers.js';
import { httpReceiver, newSecret } from '../receivers.js';
import { launchChromium, openPage, screenshots } from './browser.js';

/**
 * The dashboard's Notifications view (SPEC §12 "Visible") in a real headless Chromium against a real
 * host with real receivers: each notification's deliveries and their outcome, Redeliver, and the
 * destinations with Send test. Waits are bounded waits on page state, never sleeps.
 */

// Page code is passed as functions the test compiles without the DOM's types: declare the little they touch.
declare const document: { querySelectorAll(selector: string): { length: number } };

/** A real host with the dashboard and `destinations`, and a job that fails and notifies them all; stopped when the test ends. */
async function startNotifyHost(t: Tap, destinations: Record<string, unknown>, extra: Record<string, unknown> = {}, clock?: Clock) {
  const dir = tempDir(t, 'jobhost-dash-notify-');
  mkdirSync(path.join(dir, 'data'));
  const host = createHost({
    cwd: dir,
    ...(clock ? { clock } : {}),
    logger: silentLogger(),
    config: { store: { dir: 'data' }, notifications: { destinations, ...extra } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'nightly-export',
        isolation: 'inline',
        notify: { title: 'Nightly export', on: ['failed'], to: Object.keys(destinations), tags: ['ops'] },
        handler: () => {
          throw new Error('disk on fire');
        },
      }),
    ],
  });
  const server = useServer(host, { host: '127.0.0.1', port: 0, plugins: [dashboard] });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  const context = await launchChromium(t, dir);
  const page = await openPage(t, context);
  await page.goto(`${server.url!}/#/notifications`);
  await page.waitForSelector('#conn[data-state="live"]');
  return { host, page, shot: screenshots(dir) };
}

const note = '#view-notifications li[data-notification]';

t.test('Notifications view: a dead delivery with its error, Redeliver makes it delivered, Send test shows the answer', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 400, body: 'unknown hook: register it first' };
  const chat = await httpReceiver(t);
  const secret = newSecret();
  // The whole Slack URL is a secret: the page may show where it points, never the path.
  const slackPath = '/services/T0SECRET/B0SECRET/xoxSecretToken42';
  const { host, page, shot } = await startNotifyHost(t, {
    'ops-hook': { kind: 'webhook', url: `${hook.url}/in`, secret },
    'ops-slack': { kind: 'slack', url: `${chat.url}${slackPath}` },
  });
  await page.waitForSelector('#destinations-table tr[data-destination="ops-hook"]');
  t.same(
    await page.$$eval('#destinations-table tbody tr[data-destination]', (rows) => rows.map((r) => r.getAttribute('data-destination'))),
    ['ops-hook', 'ops-slack'],
    'both destinations listed',
  );
  t.equal(await page.textContent('#destinations-table tr[data-destination="ops-hook"] [data-col="kind"]'), 'webhook');
  t.equal(await page.textContent('#destinations-table tr[data-destination="ops-slack"] [data-col="kind"]'), 'slack');
  t.match(await page.textContent('#destinations-table tr[data-destination="ops-hook"] [data-col="target"]'), `127.0.0.1:${hook.port}`);
  t.match(await page.textContent('#view-notifications [data-open]'), 'No delivery waiting.');

  // The run fails while the page is open: the notification arrives over the WebSocket, then the
  // outcome events of its deliveries make the page read it again.
  const { runId } = await host.trigger('nightly-export');
  const hookRow = `${note} tr[data-destination="ops-hook"]`;
  const slackRow = `${note} tr[data-destination="ops-slack"]`;
  await page.waitForSelector(`${hookRow}[data-status="dead"]`);
  await page.waitForSelector(`${slackRow}[data-status="delivered"]`);
  t.match(await page.textContent(note), /Nightly export Failed/);
  t.match(await page.textContent(`${note} a`), `nightly-export · ${runId}`);
  t.match(await page.textContent(`${hookRow} [data-col="status"]`), /dead/);
  t.equal(await page.textContent(`${hookRow} [data-col="attempts"]`), '1', 'a 400 is dead at once');
  const error = await page.textContent(`${hookRow} [data-col="error"]`);
  t.match(error, /RECEIVER_REJECTED/, 'the error code');
  t.match(error, /HTTP 400/, 'the HTTP status');
  t.match(error, /unknown hook: register it first/, "the receiver's answer in the message");
  t.equal(await page.textContent(`${hookRow} [data-col="delivered"]`), '—', 'never delivered');
  t.equal(await page.textContent(`${hookRow} [data-col="next"]`), '—', 'no next attempt');
  t.match(await page.textContent(`${slackRow} [data-col="status"]`), /delivered/);
  t.equal(await page.textContent(`${slackRow} [data-col="error"]`), '—');
  t.match(await page.textContent(`${slackRow} [data-col="delivered"] time`), /now|ago/, 'when it was delivered');
  t.ok(await page.getAttribute(`${slackRow} [data-col="delivered"] time`, 'title'), 'the exact time in the title');
  await page.waitForSelector('#feed li[data-type="notification.failed"]');
  t.match(await page.textContent('#feed li[data-type="notification.failed"]'), /ops-hook: dead after 1 attempt \(RECEIVER_REJECTED HTTP 400\)/);
  await shot(page, 'notifications-dead', { fullPage: true });

  // The receiver is fixed; Redeliver sends the same delivery again, under the same id.
  hook.fallback = { status: 200, body: 'thanks' };
  const deliveryId = await page.getAttribute(hookRow, 'data-delivery');
  await page.click(`${hookRow} button:has-text("Redeliver")`);
  await page.waitForSelector(`${hookRow}[data-status="delivered"]`);
  t.match(await page.textContent(`${note} [data-said]`), 'Redelivery to ops-hook queued.', 'the result of the click');
  t.equal(await page.textContent(`${hookRow} [data-col="attempts"]`), '1', 'a new series of attempts');
  t.match(await page.textContent(`${hookRow} [data-col="error"] [data-earlier]`), /^before: RECEIVER_REJECTED HTTP 400/, 'the old error, marked as history');
  t.match(await page.textContent(`${hookRow} [data-col="delivered"] time`), /now|ago/);
  t.equal(hook.received.length, 2);
  t.equal(hook.received[1]!.headers['webhook-id'], deliveryId, 'the webhook-id is the delivery id shown');
  t.equal(chat.received.length, 1, 'the other destination was not sent again');
  await page.waitForSelector('#feed li[data-type="notification.delivered"]');

  // Redeliver all: both again.
  await page.click(`${note} button[data-redeliver-all]`);
  await hook.count(3);
  await chat.count(2);
  await page.waitForFunction(() => document.querySelectorAll('#view-notifications tr[data-status="delivered"]').length === 2);
  // The receivers can have both before the page has the answer to its click (both rows were delivered already).
  await page.waitForSelector(`${note} [data-said]:has-text("Redelivery to every destination queued.")`);
  t.match(await page.textContent(`${note} [data-said]`), 'Redelivery to every destination queued.');
  await page.waitForSelector('#view-notifications [data-open="0"]');

  // Send test: the receiver's answer, good and bad.
  const testCell = '#destinations-table tr[data-destination="ops-hook"] [data-col="test"]';
  await page.click('#destinations-table tr[data-destination="ops-hook"] button:has-text("Send test")');
  await page.waitForSelector(`${testCell} .test-result[data-ok="true"]`);
  t.match(await page.textContent(testCell), /ok/);
  t.match(await page.textContent(`${testCell} [data-test-status]`), 'HTTP 200');
  t.equal(await page.textContent(`${testCell} [data-test-body]`), 'thanks', "the receiver's body");
  hook.fallback = { status: 410, body: 'gone for good' };
  await page.click('#destinations-table tr[data-destination="ops-hook"] button:has-text("Send test")');
  await page.waitForSelector(`${testCell} .test-result[data-ok="false"]`);
  t.match(await page.textContent(testCell), /not ok/);
  t.match(await page.textContent(`${testCell} [data-test-status]`), 'HTTP 410');
  t.match(await page.textContent(`${testCell} [data-test-error]`), /^RECEIVER_REJECTED\s*the receiver answered 410: gone for good$/);
  t.equal(await page.textContent(`${testCell} [data-test-body]`), 'gone for good');
  t.equal(hook.received.length, 5, 'two test messages reached the receiver');

  const html = await page.content();
  t.notOk(html.includes(secret.slice(6)), 'no webhook secret on the page');
  t.notOk(html.includes('xoxSecretToken42') || html.includes('T0SECRET'), 'no Slack URL path on the page');
  await shot(page, 'notifications-delivered', { fullPage: true });

  // On a phone the tables become cards: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForFunction(() => document.querySelectorAll('#view-notifications tr[data-status="delivered"]').length === 2);
  t.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'), 'narrow: nothing wider than the screen');
  await shot(page, 'notifications-narrow', { fullPage: true });
  t.same(page.errors, [], 'no page errors');
});

t.test('a retrying delivery shows its next attempt, and becomes delivered on its own', async (t) => {
  const hook = await httpReceiver(t);
  hook.script({ status: 503, body: 'down for maintenance' });
  // The host's clock is injected, so the retry waits until the test moves it: the page is given
  // all the time it needs to show the delivery retrying (a real 5 s delay raced the page's reads).
  const clock = createManualClock(Date.now());
  const { host, page } = await startNotifyHost(
    t,
    { 'ops-hook': { kind: 'webhook', url: hook.url } },
    { retry: { attempts: 3, delay: '30s', jitter: 0 } },
    clock,
  );
  await clock.set(Date.now());
  await host.trigger('nightly-export');
  const row = `${note} tr[data-destination="ops-hook"]`;
  // No event says "retrying": the page reads a notification with a pending delivery again by itself.
  await page.waitForSelector(`${row}[data-status="retrying"]`);
  t.match(await page.textContent(`${row} [data-col="status"]`), /retrying/);
  t.equal(await page.textContent(`${row} [data-col="attempts"]`), '1');
  t.match(await page.textContent(`${row} [data-col="error"]`), /RECEIVER_ERROR\s*HTTP 503\s*the receiver answered 503: down for maintenance/);
  t.match(await page.textContent(`${row} [data-col="next"] time`), /^in \d+s$/, 'when the next attempt is due');
  t.equal(await page.textContent(`${row} [data-col="delivered"]`), '—');
  t.equal(hook.received.length, 1, 'one request so far');
  await clock.advance(30_000);
  await page.waitForSelector(`${row}[data-status="delivered"]`, { timeout: 15_000 });
  t.equal(await page.textContent(`${row} [data-col="attempts"]`), '2');
  t.equal(await page.textContent(`${row} [data-col="next"]`), '—');
  t.same(page.errors, [], 'no page errors');
});
