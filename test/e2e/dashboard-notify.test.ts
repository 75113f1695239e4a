import { mkdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigInput } from '../../core/contract/config.js';
import { silentLogger } from '../../core/contract/logger.js';
import { definePlugin } from '../../core/contract/plugin.js';
import { createHost } from '../../core/engine/host.js';
import { dashboard } from '../../core/server/dashboard.js';
import { useServer } from '../../core/server/server.js';
import { tempDir } from '../helpers.js';
import { httpReceiver, newSecret } from '../receivers.js';
import { launchChromium, openPage, screenshots } from './browser.js';

/**
 * The dashboard's Notifications view (SPEC §12 "Visible") in a real headless Chromium against a real
 * host with real receivers: each notification's deliveries and their outcome, Redeliver, and the
 * destinations with Send test. Waits are bounded waits on page state, never sleeps.
 */

// Page code is passed as functions the test compiles without the DOM's types: declare the little they touch.
declare const document: { querySelectorAll(selector: string): { length: number } };

t.test('Notifications view: a dead delivery with its error, Redeliver makes it delivered, Send test shows the answer', async (t) => {
  const dir = tempDir(t, 'jobhost-dash-notify-');
  mkdirSync(path.join(dir, 'data'));
  const context = await launchChromium(t, dir);
  const shot = screenshots(dir);

  const hook = await httpReceiver(t);
  hook.fallback = { status: 400, body: 'unknown hook: register it first' };
  const chat = await httpReceiver(t);
  const secret = newSecret();
  // The whole Slack URL is a secret: the page may show where it points, never the path.
  const slackPath = '/services/T0SECRET/B0SECRET/xoxSecretToken42';
  const host = createHost({
    cwd: dir,
    logger: silentLogger(),
    config: {
      store: { dir: 'data' },
      notifications: {
        destinations: {
          'ops-hook': { kind: 'webhook', url: `${hook.url}/in`, secret },
          'ops-slack': { kind: 'slack', url: `${chat.url}${slackPath}` },
        },
      },
    } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'nightly-export',
        isolation: 'inline',
        notify: { title: 'Nightly export', on: ['failed'], to: ['ops-hook', 'ops-slack'], tags: ['ops'] },
        handler: () => {
          throw new Error('disk on fire');
        },
      }),
    ],
  });
  const server = useServer(host, { host: '127.0.0.1', port: 0, plugins: [dashboard] });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));

  const page = await openPage(t, context);
  await page.goto(`${server.url!}/#/notifications`);
  await page.waitForSelector('#conn[data-state="live"]');
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
  const note = '#view-notifications li[data-notification]';
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
  t.same(page.errors, [], 'no page errors');
});
