import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import t from 'tap';
import { type Tap, tempDir } from '../helpers.js';
import { type DashboardHost, launchChromium, openPage, pluginSource, startDashboardHost } from './browser.js';

/**
 * SPEC §7 in a real browser: a token-less host on 127.0.0.1 and a hostile page the same browser
 * opens from another local origin (a second server on another port). The page tries what a
 * cross-site attacker can: a no-cors POST, form POSTs, a JSON fetch and a WebSocket. Nothing may
 * run and no event may reach it, while the dashboard on the host's own origin keeps working.
 * Chromium resolves `rebind.example` to 127.0.0.1, as a DNS-rebinding attacker's name would.
 */

const VICTIM = pluginSource(`{ name: 'victim', description: 'Must not be run by other sites', on: ['evil.happened'], handler: () => ({ ran: true }) }`);
const FILES = { 'victim.ts': VICTIM };

/**
 * The hostile page. It reports into `window.attack`: what each request came back as (an opaque
 * response means the browser did send it), and what its WebSocket saw.
 */
const ATTACK_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>totally harmless</title>
<iframe name="sink" id="sink"></iframe>
<form id="plain" method="POST" target="sink" enctype="text/plain"><input name='{"params":{"a":"' value='b"}}'></form>
<form id="empty" method="POST" target="sink"></form>
<form id="multi" method="POST" target="sink" enctype="multipart/form-data"><input name="x" value="1"></form>
<script>
const victim = new URLSearchParams(location.search).get('victim');
const attack = (window.attack = { noCors: [], forms: [], json: null, ws: { state: 'connecting', opened: false, messages: [] }, done: false });
const ws = new WebSocket(victim.replace('http:', 'ws:') + '/events?since=0');
ws.onopen = () => { attack.ws.opened = true; attack.ws.state = 'open'; };
ws.onmessage = (m) => attack.ws.messages.push(JSON.parse(m.data));
ws.onclose = (e) => { attack.ws.state = 'closed'; attack.ws.code = e.code; };
const submit = (id, path) => new Promise((resolve) => {
  const form = document.getElementById(id);
  form.action = victim + path;
  document.getElementById('sink').onload = () => resolve(id + ': loaded');
  form.submit();
});
(async () => {
  for (const [path, body] of [['/jobs/victim/run'], ['/jobs/victim/run', '{"params":{}}'], ['/events/evil.happened'], ['/jobs/victim/disable']]) {
    try {
      const res = await fetch(victim + path, { method: 'POST', mode: 'no-cors', ...(body && { body }) });
      attack.noCors.push(res.type);
    } catch (err) {
      attack.noCors.push('failed: ' + err.name);
    }
  }
  try {
    const res = await fetch(victim + '/jobs/victim/run', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    attack.json = 'answered ' + res.status;
  } catch (err) {
    attack.json = 'failed: ' + err.name;
  }
  attack.forms.push(await submit('plain', '/jobs/victim/run'));
  attack.forms.push(await submit('empty', '/jobs/victim/disable'));
  attack.forms.push(await submit('multi', '/events/evil.happened'));
  attack.done = true;
})();
</script>`;

interface Attack {
  noCors: string[];
  forms: string[];
  json: string | null;
  ws: { state: string; opened: boolean; messages: Array<{ type: string; data?: { runId?: string } }>; code?: number };
  done: boolean;
}

/** The attacker's server: another port on this machine, so another origin. Closed when the test ends. */
async function serveAttacker(t: Tap): Promise<string> {
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(ATTACK_PAGE);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * Opens the attack page against `victim` and waits until every request has settled and the
 * WebSocket with it. `network` is what the browser saw of each HTTP request to the victim, in
 * order: `POST /path 403`, or the network error (`net::ERR_BLOCKED_BY_RESPONSE...` means an
 * answer came and was withheld from the page).
 */
async function runAttack(t: Tap, attacker: string, victim: DashboardHost): Promise<{ page: Page; network: string[]; attack: () => Promise<Attack> }> {
  const page = await openPage(t, context);
  const network: string[] = [];
  const mine = (url: string): string | null => (url.startsWith(victim.url) ? new URL(url).pathname : null);
  page.on('response', (r) => {
    const path = mine(r.url());
    if (path !== null) network.push(`${r.request().method()} ${path} ${r.status()}`);
  });
  page.on('requestfailed', (r) => {
    const path = mine(r.url());
    if (path !== null) network.push(`${r.method()} ${path} ${r.failure()?.errorText ?? 'failed'}`);
  });
  await page.goto(`${attacker}/?victim=${encodeURIComponent(victim.url)}`);
  await page.waitForFunction("window.attack.done && window.attack.ws.state !== 'connecting'");
  return { page, network, attack: () => page.evaluate<Attack>('window.attack') };
}

/** What the attack page sends, in order, with what each request should have met. */
const sent = (noCors: string, forms: number): string[] => [
  `POST /jobs/victim/run ${noCors}`,
  `POST /jobs/victim/run ${noCors}`,
  `POST /events/evil.happened ${noCors}`,
  `POST /jobs/victim/disable ${noCors}`,
  // The JSON POST: its preflight is refused, so the POST itself never leaves the browser.
  'POST /jobs/victim/run net::ERR_FAILED',
  `POST /jobs/victim/run ${forms}`,
  `POST /jobs/victim/disable ${forms}`,
  `POST /events/evil.happened ${forms}`,
];
// The host answers, but its answers are marked same-origin: the browser keeps them from the page.
const WITHHELD = 'net::ERR_BLOCKED_BY_RESPONSE.NotSameOrigin';

const shared = tempDir(t, 'jobhost-cross-site-');
const context = await launchChromium(t, shared, ['--host-resolver-rules=MAP rebind.example 127.0.0.1']);
const attacker = await serveAttacker(t);

t.test('a page from another origin can neither run a job nor read the event stream', async (t) => {
  const victim = await startDashboardHost(t, FILES);
  const seen: string[] = [];
  victim.host.on('*', (e) => seen.push(e.type));
  const { network, attack } = await runAttack(t, attacker, victim);

  const result = await attack();
  t.same(network, sent(WITHHELD, 403), 'each request reached the host and was refused');
  t.same(result.noCors, ['failed: TypeError', 'failed: TypeError', 'failed: TypeError', 'failed: TypeError'], 'the page learns nothing from the answers');
  t.equal(result.json, 'failed: TypeError');
  t.same(result.forms, ['plain: loaded', 'empty: loaded', 'multi: loaded']);
  t.same(result.ws, { state: 'closed', opened: false, messages: [], code: 1006 }, 'the WebSocket was refused at the upgrade');

  t.same((await victim.host.runs()).items, [], 'no run was created');
  t.same(
    seen.filter((type) => type.startsWith('run.')),
    [],
    'not even a refused one',
  );
  t.equal(victim.host.job('victim')?.enabled, true, 'the job was not disabled');

  // A run the host's user starts: its events go to the host's clients, never to the hostile page.
  const { runId } = await victim.host.trigger('victim');
  t.equal((await victim.host.wait(runId)).status, 'succeeded');
  t.same((await attack()).ws.messages, [], 'no event reached the page');
});

t.test("the dashboard on the host's own origin keeps working, by address and by name, live feed included", async (t) => {
  const victim = await startDashboardHost(t, FILES);
  const port = new URL(victim.url).port;
  for (const url of [victim.url, `http://localhost:${port}`]) {
    const page = await openPage(t, context);
    await page.goto(url);
    await page.waitForSelector('#conn[data-state="live"]');
    await page.waitForSelector('#jobs-table tr[data-job="victim"]');

    // A POST with a body (Run…), then two without one (the enabled toggle).
    await page.click('#jobs-table tr[data-job="victim"] button:has-text("Run")');
    await page.waitForSelector('#run-dialog[open]');
    await page.click('#run-dialog button[type=submit]');
    await page.waitForSelector('[data-run-status="succeeded"]');
    await page.click('nav a[data-nav="jobs"]');
    await page.uncheck('#jobs-table tr[data-job="victim"] input[type=checkbox]');
    await page.waitForSelector('#jobs-table tr[data-job="victim"].is-disabled');
    t.equal(victim.host.job('victim')?.enabled, false, `${url}: disabled from the page`);
    await page.check('#jobs-table tr[data-job="victim"] input[type=checkbox]');
    await page.waitForSelector('#jobs-table tr[data-job="victim"]:not(.is-disabled)');

    const { runId } = await victim.host.trigger('victim');
    await page.waitForSelector(`#feed li[data-type="run.succeeded"]:has-text("${runId}")`);
    t.pass(`${url}: the live feed shows a run started elsewhere`);
    t.same(page.errors, []);
  }
  t.equal((await victim.host.runs()).items.filter((r) => r.source === 'http').length, 2, 'one run from each page');
});

t.test('DNS rebinding: a hostile name that resolves to 127.0.0.1 is not served', async (t) => {
  const victim = await startDashboardHost(t, FILES);
  const rebound = `http://rebind.example:${new URL(victim.url).port}`;
  const page = await openPage(t, context);
  const response = await page.goto(rebound);
  t.equal(response?.status(), 403, 'the page itself is refused');
  t.match(await page.textContent('body'), /HOST_NOT_ALLOWED/);
  // Same-origin in the browser's eyes: nothing like CORS stands in the way, only the Host check.
  const status = await page.evaluate<number>(
    "fetch('/jobs/victim/run', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status)",
  );
  t.equal(status, 403, 'a same-origin POST is refused');
  const ws = await page.evaluate<string>(
    "new Promise((resolve) => { const ws = new WebSocket('ws://' + location.host + '/events'); ws.onopen = () => resolve('open'); ws.onclose = (e) => resolve('closed ' + e.code); })",
  );
  t.equal(ws, 'closed 1006', 'so is the WebSocket');
  t.same((await victim.host.runs()).items, [], 'no run');
});

t.test('an origin in server.allowedOrigins gets the event stream; a no-cors POST still runs nothing', async (t) => {
  // What a reverse proxy's public origin is listed for; here the attack page stands in for it.
  const victim = await startDashboardHost(t, FILES, { allowedOrigins: [attacker] });
  const { page, network, attack } = await runAttack(t, attacker, victim);
  const result = await attack();
  t.equal(result.ws.opened, true, 'the listed origin may open the WebSocket');
  t.equal(result.ws.messages[0]?.type, 'hello');
  t.same(network, sent(WITHHELD, 415), 'the POSTs pass the Origin check and are refused 415');
  t.same((await victim.host.runs()).items, [], 'POSTs that do not say application/json reach no handler, whatever their origin');
  t.equal(victim.host.job('victim')?.enabled, true);

  const { runId } = await victim.host.trigger('victim');
  await page.waitForFunction(`window.attack.ws.messages.some((m) => m.type === 'run.succeeded' && m.data.runId === '${runId}')`);
  t.pass('events reach the listed origin live');
});
