import t from 'tap';
import type { ConfigInput } from '../../../core/contract/config.js';
import type { Notification } from '../../../core/contract/notification.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { captureLogger, startServer, type TestServer, until } from '../../helpers.js';
import { httpReceiver, newSecret, smtpReceiver } from '../../receivers.js';

/** Delivered notifications on one host (SPEC §12): real receivers, the host's clock injected for retry delays. */

const failing = (to: string[], extra: Record<string, unknown> = {}) =>
  definePlugin({
    name: 'nightly-export',
    isolation: 'inline',
    notify: { title: 'Nightly export', on: ['failed'], to, ...extra },
    handler: () => {
      throw new Error('disk on fire');
    },
  });

async function notification(s: TestServer, check: (n: Notification) => boolean, what: string): Promise<Notification> {
  let found: Notification | undefined;
  await until(
    async () => {
      const page = await s.host.notifications({});
      found = page.items.find(check);
      return found !== undefined;
    },
    10_000,
    what,
  );
  return found!;
}

const deliveryIs = (status: string, attempts?: number) => (n: Notification) =>
  n.deliveries[0]?.status === status && (attempts === undefined || n.deliveries[0]?.attempts === attempts);

async function hostWith(t: Tap, destinations: Record<string, unknown>, plugin = failing(Object.keys(destinations)), extra: Record<string, unknown> = {}) {
  return startServer(t, { config: { notifications: { destinations, ...extra } } as ConfigInput, plugins: [plugin] });
}
type Tap = Parameters<typeof startServer>[0];

t.test('webhook: signed per Standard Webhooks, verified by the receiver; delivered, visible, counted, an event', async (t) => {
  const secret = newSecret();
  const hook = await httpReceiver(t, { secret });
  const s = await hostWith(t, { 'ops-hook': { kind: 'webhook', url: `${hook.url}/in`, secret } });
  const { runId } = await s.host.trigger('nightly-export');
  await hook.count(1);
  const got = hook.received[0]!;
  t.equal(got.verified, true, 'Webhook.verify accepts it');
  t.equal(got.path, '/in');
  const body = got.json as Record<string, unknown>;
  t.match(body, { job: 'nightly-export', runId, status: 'failed', title: 'Nightly export Failed', priority: 'high' });
  t.notOk('deliveries' in body, 'the delivery records stay home');
  const n = await notification(s, deliveryIs('delivered'), 'delivered');
  t.equal(got.headers['webhook-id'], n.deliveries[0]!.id, 'webhook-id is the delivery id');
  t.match(n.deliveries[0], { destination: 'ops-hook', status: 'delivered', attempts: 1, lastError: null, nextAt: null });
  t.ok(n.deliveries[0]!.deliveredAt);
  await until(() => s.of('notification.delivered').length === 1, 5000, 'notification.delivered');
  t.match(s.of('notification.delivered')[0]!.data, { job: 'nightly-export', runId, id: n.id, destination: 'ops-hook', attempts: 1 });
  const res = await s.request('GET', '/notifications');
  t.match((res.json.items as Notification[])[0]!.deliveries, [{ destination: 'ops-hook', status: 'delivered', attempts: 1 }]);
  const one = await s.request('GET', `/notifications/${n.id}`);
  t.equal(one.status, 200);
  t.equal((await s.request('GET', '/notifications/nope')).json.code, 'NOTIFICATION_NOT_FOUND');
  const metrics = await s.metrics();
  t.match(metrics, /jobhost_notification_deliveries_total\{destination="ops-hook",outcome="delivered"\} 1/);
  t.match(metrics, /jobhost_notification_deliveries_open 0/);
});

t.test('5xx twice then 200: three requests under one id, retried after the backoff on the host clock', async (t) => {
  const hook = await httpReceiver(t);
  hook.script({ status: 500, body: 'oops' }, { status: 503 });
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } }, undefined, { retry: { attempts: 5, delay: '10s', jitter: 0 } });
  await s.host.trigger('nightly-export');
  await hook.count(1);
  let n = await notification(s, deliveryIs('retrying', 1), 'retrying after the first 500');
  t.match(n.deliveries[0]!.lastError, { code: 'RECEIVER_ERROR', status: 500, message: 'the receiver answered 500: oops' });
  t.equal(Date.parse(n.deliveries[0]!.nextAt!) - s.clock.now(), 10_000, 'the first delay');
  await s.clock.advance(9_999);
  t.equal(hook.received.length, 1, 'not before its time');
  await s.clock.advance(1);
  await hook.count(2);
  n = await notification(s, deliveryIs('retrying', 2), 'retrying after the 503');
  t.equal(Date.parse(n.deliveries[0]!.nextAt!) - s.clock.now(), 20_000, 'exponential');
  await s.clock.advance(20_000);
  await hook.count(3);
  n = await notification(s, deliveryIs('delivered', 3), 'delivered on the third');
  const ids = new Set(hook.received.map((r) => r.headers['webhook-id']));
  t.equal(ids.size, 1, 'one id over every attempt');
  t.equal([...ids][0], n.deliveries[0]!.id);
  t.not(hook.received[0]!.headers['webhook-timestamp'], undefined);
});

t.test('a 400 is dead at once: one request, the status and the start of the answer, notification.failed', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 400, body: 'invalid_payload: missing text' };
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } });
  await s.host.trigger('nightly-export');
  const n = await notification(s, deliveryIs('dead', 1), 'dead');
  t.match(n.deliveries[0]!.lastError, { code: 'RECEIVER_REJECTED', status: 400, message: 'the receiver answered 400: invalid_payload: missing text' });
  await s.clock.advance(3_600_000);
  t.equal(hook.received.length, 1, 'never tried again');
  await until(() => s.of('notification.failed').length === 1, 5000, 'notification.failed');
  t.match(s.of('notification.failed')[0]!.data, { destination: 'hook', error: { code: 'RECEIVER_REJECTED' } });
  t.match(await s.metrics(), /jobhost_notification_deliveries_total\{destination="hook",outcome="dead"\} 1/);
});

t.test('429 with Retry-After is honoured; the last allowed attempt ends dead', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 429, headers: { 'retry-after': '120' } };
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } }, undefined, { retry: { attempts: 2, delay: '1s' } });
  await s.host.trigger('nightly-export');
  const n = await notification(s, deliveryIs('retrying', 1), 'retrying');
  t.equal(Date.parse(n.deliveries[0]!.nextAt!) - s.clock.now(), 120_000, 'Retry-After: 120');
  await s.clock.advance(120_000);
  await notification(s, deliveryIs('dead', 2), 'dead after its 2 attempts');
  t.equal(hook.received.length, 2);
});

t.test('a receiver that hangs, closes the socket or answers garbage is retried like a 5xx', async (t) => {
  for (const answer of ['hang', 'close', 'garbage'] as const) {
    const hook = await httpReceiver(t);
    hook.fallback = answer;
    const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } }, undefined, { timeout: '300ms' });
    await s.host.trigger('nightly-export');
    const n = await notification(s, deliveryIs('retrying', 1), `retrying after ${answer}`);
    t.equal(n.deliveries[0]!.lastError!.code, answer === 'hang' ? 'RECEIVER_TIMEOUT' : 'RECEIVER_UNREACHABLE', answer);
    t.notMatch(n.deliveries[0]!.lastError!.message, /127\.0\.0\.1/, 'no URL in the message');
    // It answered: "could not reach" would send its owner looking for a network fault.
    if (answer === 'garbage') t.match(n.deliveries[0]!.lastError!.message, /^the receiver's answer was not valid HTTP \(HPE_/);
    await s.host.stop({ graceMs: 0 });
  }
});

t.test('a receiver that is down is retried; nothing holds the runs meanwhile', async (t) => {
  const hook = await httpReceiver(t);
  await hook.close();
  // Storm control off: each of the 20 failures is a message of its own.
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } }, undefined, { throttle: 0 });
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push((await s.host.trigger('nightly-export')).runId);
  for (const id of ids) t.equal((await s.host.wait(id)).status, 'failed');
  const n = await notification(s, deliveryIs('retrying', 1), 'retrying');
  t.match(n.deliveries[0]!.lastError, { code: 'RECEIVER_UNREACHABLE', message: /ECONNREFUSED/ });
  await until(() => s.host.deliveries.open() === 20, 5000, '20 open deliveries');
});

t.test('a receiver that hangs holds at most half the delivery slots: the other destinations still get theirs', async (t) => {
  const stuck = await httpReceiver(t);
  stuck.fallback = 'hang';
  const pager = await httpReceiver(t);
  // Two slots: one destination may hold one. Storm control off: each failure is a message of its own.
  const s = await hostWith(t, { stuck: { kind: 'webhook', url: stuck.url }, pager: { kind: 'webhook', url: pager.url } }, undefined, {
    concurrency: 2,
    timeout: '10m',
    throttle: 0,
  });
  for (let i = 0; i < 4; i++) t.equal((await s.host.wait((await s.host.trigger('nightly-export')).runId)).status, 'failed');
  // Before, the second attempt to the hanging receiver took the other slot until the timeout.
  await pager.count(4, 5000);
  t.equal(stuck.received.length, 1, 'one attempt at a time to the receiver that hangs');
  await until(
    async () => (await s.host.notifications({})).items.every((n) => n.deliveries.find((d) => d.destination === 'pager')?.status === 'delivered'),
    5000,
    'all delivered to pager',
  );
  await s.host.stop({ graceMs: 0 });
});

t.test('Slack, Discord and PagerDuty get their own JSON; email goes over SMTP', async (t) => {
  const slack = await httpReceiver(t);
  const discord = await httpReceiver(t);
  discord.fallback = { status: 204 };
  const pd = await httpReceiver(t);
  pd.fallback = { status: 202, body: '{"status":"success","dedup_key":"nightly-export"}' };
  const smtp = await smtpReceiver(t);
  const s = await startServer(t, {
    config: {
      server: { publicUrl: 'https://jobs.example.com/' },
      notifications: {
        destinations: {
          'ops-slack': { kind: 'slack', url: `${slack.url}/services/T000/B000/XXXX` },
          'team-chat': { kind: 'discord', url: `${discord.url}/api/webhooks/1/abc` },
          pager: { kind: 'pagerduty', routingKey: 'R0UTINGKEY123456', url: `${pd.url}/v2/enqueue` },
          'team-mail': { kind: 'email', smtp: smtp.url, from: 'jobhost@example.com', to: ['ops@example.com', 'b@example.com'] },
        },
      },
    },
    plugins: [failing(['ops-slack', 'team-chat', 'pager', 'team-mail'])],
  });
  const { runId } = await s.host.trigger('nightly-export');
  await Promise.all([slack.count(1), discord.count(1), pd.count(1), smtp.count(1)]);
  const link = `https://jobs.example.com/#/runs/${runId}`;
  t.match(slack.received[0]!.json, { text: /^Nightly export Failed: Job nightly-export run .* failed: disk on fire$/, blocks: [{ type: 'header' }, {}, {}] });
  t.match(JSON.stringify(slack.received[0]!.json), link, 'the run link');
  t.match(discord.received[0]!.json, { embeds: [{ title: 'Nightly export Failed', url: link, fields: [{ name: 'Job', value: 'nightly-export' }] }] });
  t.match(pd.received[0]!.json, {
    routing_key: 'R0UTINGKEY123456',
    event_action: 'trigger',
    dedup_key: 'nightly-export',
    payload: { severity: 'error', source: s.host.id, summary: /^Nightly export Failed/ },
  });
  t.equal(smtp.mails[0]!.subject, 'Nightly export Failed');
  t.same(smtp.mails[0]!.to, ['ops@example.com', 'b@example.com']);
  t.match(smtp.mails[0]!.raw, link);
  t.match(smtp.mails[0]!.raw, /failed: disk on fire/);
  t.match(smtp.mails[0]!.raw, /^Content-Transfer-Encoding: 7bit/m, 'an ASCII message goes as plain text');
  t.match(smtp.mails[0]!.raw, /\nStatus: failed, priority high\r?\n/);
  await notification(s, (n) => n.deliveries.length === 4 && n.deliveries.every((d) => d.status === 'delivered'), 'all four delivered');
});

t.test('a redirect is dead at once, not followed: the status and the start of the answer', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 302, body: 'moved to the new inbox', headers: { location: `${hook.url}/elsewhere` } };
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } });
  await s.host.trigger('nightly-export');
  const n = await notification(s, deliveryIs('dead', 1), 'dead');
  t.match(n.deliveries[0]!.lastError, {
    code: 'RECEIVER_REJECTED',
    status: 302,
    message: 'the receiver answered 302 (a redirect; redirects are not followed): moved to the new inbox',
  });
  t.equal(hook.received.length, 1, 'the redirect was not followed');
});

t.test('SMTP: a 4xx reply is retried, a 5xx is dead', async (t) => {
  const smtp = await smtpReceiver(t);
  smtp.refuse(451, 550);
  const s = await hostWith(t, { mail: { kind: 'email', smtp: smtp.url, from: 'a@example.com', to: ['b@example.com'] } }, undefined, {
    retry: { delay: '1s', jitter: 0 },
  });
  await s.host.trigger('nightly-export');
  let n = await notification(s, deliveryIs('retrying', 1), '451 retried');
  t.match(n.deliveries[0]!.lastError, { code: 'RECEIVER_ERROR', status: 451 });
  await s.clock.advance(1000);
  n = await notification(s, deliveryIs('dead', 2), '550 dead');
  t.match(n.deliveries[0]!.lastError, { code: 'RECEIVER_REJECTED', status: 550 });
});

t.test("SMTP: the URL's nodemailer options apply (a self-signed STARTTLS server); credentials are decoded", async (t) => {
  const smtp = await smtpReceiver(t, { starttls: true, auth: { user: 'jobs@example.com', pass: 'p@ss:w/rd' } });
  const url = smtp.url.replace('smtp://', `smtp://${encodeURIComponent('jobs@example.com')}:${encodeURIComponent('p@ss:w/rd')}@`);
  const s = await hostWith(t, {
    strict: { kind: 'email', smtp: url, from: 'a@example.com', to: ['b@example.com'] },
    lenient: { kind: 'email', smtp: `${url}?tls.rejectUnauthorized=false`, from: 'a@example.com', to: ['c@example.com'] },
  });
  await s.host.trigger('nightly-export');
  await smtp.count(1);
  t.same(smtp.mails[0]!.to, ['c@example.com'], 'sent over STARTTLS, the certificate accepted as the URL says');
  const n = await notification(s, (x) => x.deliveries.some((d) => d.destination === 'strict' && d.status === 'retrying'), 'the strict one retried');
  const strict = n.deliveries.find((d) => d.destination === 'strict')!;
  t.match(strict.lastError, { code: 'RECEIVER_UNREACHABLE' }, "without the option the self-signed certificate is refused, as nodemailer's default");
  t.notMatch(JSON.stringify(n), 'p@ss', 'no password in the record');
});

t.test('routes pick destinations by job, tag, priority and status; notify.to adds its own; each once', async (t) => {
  const a = await httpReceiver(t);
  const b = await httpReceiver(t);
  const c = await httpReceiver(t);
  const s = await startServer(t, {
    config: {
      notifications: {
        destinations: { a: { kind: 'webhook', url: a.url }, b: { kind: 'webhook', url: b.url }, c: { kind: 'webhook', url: c.url } },
        routes: [
          { to: ['a'], priority: ['high'] },
          { to: ['b'], jobs: ['nightly-*'], tags: ['fin*'] },
          { to: ['c'], status: ['succeeded'] },
          { to: ['a', 'b'], jobs: ['other'] },
        ],
      },
    },
    plugins: [failing(['a'], { tags: ['finance'] })],
  });
  await s.host.trigger('nightly-export');
  const n = await notification(s, (n) => n.deliveries.every((d) => d.status === 'delivered'), 'delivered');
  t.same(
    n.deliveries.map((d) => d.destination),
    ['a', 'b'],
    'a (notify.to and the priority route, once), b (job glob and tag glob); not c (status) nor the other job',
  );
  t.equal(c.received.length, 0);
});

t.test('a destination the config lacks: that delivery is dead with DESTINATION_NOT_FOUND; the others go', async (t) => {
  const hook = await httpReceiver(t);
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } }, failing(['hook', 'gone']));
  await s.host.trigger('nightly-export');
  const n = await notification(s, (n) => n.deliveries.every((d) => d.status !== 'pending' && d.status !== 'retrying'), 'both settled');
  t.match(n.deliveries, [
    { destination: 'hook', status: 'delivered' },
    { destination: 'gone', status: 'dead', lastError: { code: 'DESTINATION_NOT_FOUND' } },
  ]);
});

t.test('redeliver: a dead delivery goes again under the same id, over HTTP; 404s name what is missing', async (t) => {
  const hook = await httpReceiver(t);
  hook.script({ status: 404, body: 'no such hook' });
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } });
  await s.host.trigger('nightly-export');
  const n = await notification(s, deliveryIs('dead', 1), 'dead');
  const res = await s.request('POST', `/notifications/${n.id}/redeliver`);
  t.equal(res.status, 202);
  await hook.count(2);
  await notification(s, deliveryIs('delivered', 1), 'delivered in a new series');
  t.equal(hook.received[1]!.headers['webhook-id'], hook.received[0]!.headers['webhook-id'], 'the same id');
  const one = await s.request('POST', `/notifications/${n.id}/redeliver`, { body: { destination: 'hook' } });
  t.equal(one.status, 202);
  await hook.count(3);
  t.equal((await s.request('POST', `/notifications/${n.id}/redeliver`, { body: { destination: 'nope' } })).json.code, 'DESTINATION_NOT_FOUND');
  t.equal((await s.request('POST', '/notifications/nope/redeliver')).json.code, 'NOTIFICATION_NOT_FOUND');
});

t.test('redeliver to one destination leaves the others alone: an attempt in flight to another is not sent twice', async (t) => {
  const dead = await httpReceiver(t);
  dead.script({ status: 404, body: 'no such hook' });
  const slow = await httpReceiver(t);
  slow.script('hang');
  const s = await hostWith(t, { dead: { kind: 'webhook', url: dead.url }, slow: { kind: 'webhook', url: slow.url } });
  await s.host.trigger('nightly-export');
  const n = await notification(s, (x) => x.deliveries.some((d) => d.destination === 'dead' && d.status === 'dead'), 'dead');
  await slow.count(1);
  t.match(await s.host.deliveries.redeliver(n.id, 'dead'), {
    deliveries: [
      { destination: 'dead', status: 'pending' },
      { destination: 'slow', status: 'pending', attempts: 0 },
    ],
  });
  await dead.count(2);
  await until(() => s.of('notification.delivered').some((e) => e.data.destination === 'dead'), 5000, 'delivered to dead');
  t.equal(slow.received.length, 1, 'the attempt in flight to slow was not made again');
  t.match((await s.host.deliveries.get(n.id)).deliveries, [
    { destination: 'dead', status: 'delivered', attempts: 1 },
    { destination: 'slow', status: 'pending', attempts: 0 },
  ]);
});

/** A PagerDuty destination at `url`. */
const pager = (url: string) => ({ kind: 'pagerduty' as const, routingKey: 'R0UTINGKEY123456', url });

/** What a PagerDuty receiver was asked, in order: `trigger` or `resolve`. */
const actions = (pd: { received: Array<{ json: unknown }> }): string[] => pd.received.map((r) => (r.json as { event_action: string }).event_action);

/** Job `flappy`, telling failures and successes to `pager`: it fails while `failing` is true. */
function flappyPlugin() {
  const state = {
    failing: true,
    plugin: definePlugin({
      name: 'flappy',
      isolation: 'inline',
      notify: { on: ['failed', 'succeeded'], to: ['pager'] },
      handler: () => {
        if (state.failing) throw new Error('down');
        return 'ok';
      },
    }),
  };
  return state;
}

t.test('PagerDuty: a resolve waits for the trigger of its incident still being retried, then goes after it', async (t) => {
  const pd = await httpReceiver(t);
  pd.script({ status: 429, headers: { 'retry-after': '10' } });
  const flappy = flappyPlugin();
  const s = await hostWith(t, { pager: pager(pd.url) }, flappy.plugin, { throttle: 0 });
  await s.host.wait((await s.host.trigger('flappy')).runId);
  await pd.count(1);
  await notification(s, deliveryIs('retrying', 1), 'the trigger retrying after its 429');
  flappy.failing = false;
  await s.host.wait((await s.host.trigger('flappy')).runId);
  const resolve = await notification(s, (n) => n.status === 'succeeded', 'the resolve recorded');
  // Nothing sent before the trigger's retry: the resolve waits, with no attempt spent.
  await s.clock.advance(9_000);
  t.equal(pd.received.length, 1, 'the resolve did not overtake the trigger');
  t.match((await s.host.deliveries.get(resolve.id)).deliveries, [{ status: 'pending', attempts: 0 }]);
  await until(
    async () => {
      await s.clock.advance(1000);
      return pd.received.length >= 3;
    },
    10_000,
    'the trigger again, then the resolve',
  );
  t.same(actions(pd), ['trigger', 'trigger', 'resolve'], 'the incident ends resolved');
  await notification(
    s,
    (n) => n.id === resolve.id && n.deliveries[0]?.status === 'delivered' && n.deliveries[0].attempts === 1,
    'the resolve delivered at its first attempt',
  );
});

t.test('PagerDuty: a new trigger waits for the resolve before it, which waits for the trigger before that: the incident ends as the job did', async (t) => {
  const pd = await httpReceiver(t);
  pd.script({ status: 429, headers: { 'retry-after': '10' } });
  const flappy = flappyPlugin();
  const s = await hostWith(t, { pager: pager(pd.url) }, flappy.plugin, { throttle: 0 });
  await s.host.wait((await s.host.trigger('flappy')).runId);
  await pd.count(1);
  flappy.failing = false;
  await s.host.wait((await s.host.trigger('flappy')).runId);
  flappy.failing = true;
  await s.host.wait((await s.host.trigger('flappy')).runId);
  await notification(s, (n) => n.job === 'flappy' && n.status === 'failed' && n.deliveries[0]?.attempts === 0, 'the second failure recorded');
  await until(
    async () => {
      await s.clock.advance(1000);
      return pd.received.length >= 4;
    },
    15_000,
    'all four sent',
  );
  t.same(actions(pd), ['trigger', 'trigger', 'resolve', 'trigger'], 'the incident ends open, as the job: failing');
});

t.test("PagerDuty: a backlog of other jobs' open triggers does not hide the one a resolve waits for", async (t) => {
  const pd = await httpReceiver(t);
  // Every trigger is refused for a minute (an outage); what is not a trigger is taken.
  pd.fallback = { status: 429, headers: { 'retry-after': '60' } };
  const flappy = flappyPlugin();
  const plugins = [
    definePlugin({
      name: 'noise',
      isolation: 'inline',
      concurrency: 50,
      notify: { on: ['failed'], to: ['pager'] },
      handler: () => {
        throw new Error('down');
      },
    }),
    flappy.plugin,
  ];
  const { logger, lines } = captureLogger();
  const s = await startServer(t, {
    config: { notifications: { destinations: { pager: pager(pd.url) }, throttle: 0 } } as ConfigInput,
    plugins,
    logger,
  });
  // 250 open triggers of noise, older than flappy's: more than a backend's answer holds.
  await Promise.all(Array.from({ length: 250 }, async () => s.host.wait((await s.host.trigger('noise')).runId)));
  await s.host.wait((await s.host.trigger('flappy')).runId);
  await pd.count(251, 20_000);
  const trigger = await notification(s, (n) => n.job === 'flappy' && n.status === 'failed', "flappy's trigger");
  flappy.failing = false;
  await s.host.wait((await s.host.trigger('flappy')).runId);
  const resolve = await notification(s, (n) => n.job === 'flappy' && n.status === 'succeeded', 'the resolve recorded');
  await until(
    () => lines.some((l) => l['notification'] === resolve.id && l['msg'] === 'a delivery waits for the earlier ones of its incident'),
    10_000,
    'the resolve waiting',
  );
  t.same(lines.find((l) => l['notification'] === resolve.id)?.['waitsFor'], [trigger.id], "it waits for flappy's trigger alone");
  t.equal(actions(pd).filter((a) => a === 'resolve').length, 0, 'not sent');
  t.match((await s.host.deliveries.get(resolve.id)).deliveries, [{ status: 'pending', attempts: 0 }]);
});

t.test('a test message: the receiver answer comes back; nothing is recorded', async (t) => {
  const hook = await httpReceiver(t, { secret: newSecret() });
  hook.fallback = { status: 418, body: "I'm a teapot" };
  const secret = newSecret();
  const h2 = await httpReceiver(t, { secret });
  const s = await hostWith(t, { hook: { kind: 'webhook', url: hook.url }, signed: { kind: 'webhook', url: h2.url, secret } });
  const res = await s.request('POST', '/notifications/destinations/hook/test');
  t.equal(res.status, 200);
  t.match(res.json, { name: 'hook', kind: 'webhook', ok: false, status: 418, body: "I'm a teapot", error: { code: 'RECEIVER_REJECTED' } });
  const ok = await s.request('POST', '/notifications/destinations/signed/test');
  t.match(ok.json, { ok: true, status: 200 });
  t.equal(h2.received[0]!.verified, true);
  t.equal((await s.request('POST', '/notifications/destinations/nope/test')).json.code, 'DESTINATION_NOT_FOUND');
  t.same((await s.host.notifications({})).items, []);
});

t.test('secrets never leave: not in destinations, errors, events, the log or the OpenAPI document', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 400, body: 'echo R0UTINGKEYsecret99 and /services/T1/B2/SeCrEt' };
  const { logger, lines } = captureLogger();
  process.env.JH_TEST_SLACK = `${hook.url}/services/T1/B2/SeCrEt`;
  t.teardown(() => delete process.env.JH_TEST_SLACK);
  const secret = newSecret();
  const s = await startServer(t, {
    logger,
    config: {
      notifications: {
        destinations: {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's own ${NAME} syntax
          slack: { kind: 'slack', url: '${JH_TEST_SLACK}' },
          pager: { kind: 'pagerduty', routingKey: 'R0UTINGKEYsecret99', url: hook.url },
          hook: { kind: 'webhook', url: `http://user:pa55word@127.0.0.1:${hook.port}/x?token=t0ken123`, secret },
          mail: { kind: 'email', smtp: 'smtp://me:sm7pPass@127.0.0.1:1', from: 'a@example.com', to: ['b@example.com'] },
        },
      },
    },
    plugins: [failing(['slack', 'pager', 'hook', 'mail'])],
  });
  const dests = await s.request('GET', '/notifications/destinations');
  t.match(dests.json.items, [
    { name: 'slack', kind: 'slack', target: `http://127.0.0.1:${hook.port}/…` },
    { name: 'pager', kind: 'pagerduty' },
    { name: 'hook', kind: 'webhook', target: `http://127.0.0.1:${hook.port}/…` },
    { name: 'mail', kind: 'email', target: 'smtp://127.0.0.1:1 → b@example.com' },
  ]);
  await s.host.trigger('nightly-export');
  await notification(s, (n) => n.deliveries.every((d) => d.attempts >= 1), 'every delivery tried');
  const tests = await Promise.all(['slack', 'pager', 'hook', 'mail'].map((d) => s.request('POST', `/notifications/destinations/${d}/test`)));
  const everything = [
    dests.text,
    ...tests.map((r) => r.text),
    (await s.request('GET', '/notifications')).text,
    (await s.request('GET', '/jobs/nightly-export')).text,
    (await s.request('GET', '/openapi.json')).text,
    JSON.stringify(s.events),
    JSON.stringify(lines),
    await s.metrics(),
  ].join('\n');
  for (const secretValue of ['SeCrEt', 'R0UTINGKEYsecret99', 'pa55word', 't0ken123', 'sm7pPass', secret, secret.slice(6)]) {
    t.notOk(everything.includes(secretValue), `${secretValue.slice(0, 8)}… appears nowhere`);
  }
});

t.test('config: bad destinations are errors naming the path; a live edit applies to the next attempt', async (t) => {
  const hook = await httpReceiver(t);
  const s = await hostWith(t, { hook: { kind: 'webhook', url: 'http://127.0.0.1:1/' } }, undefined, { retry: { delay: '1s', jitter: 0 } });
  const bad: Array<[unknown, RegExp]> = [
    [{ x: { kind: 'telegram', url: 'http://a' } }, /^notifications\.destinations\.x\.kind/],
    [{ x: { kind: 'webhook' } }, /^notifications\.destinations\.x\.url/],
    [{ x: { kind: 'webhook', url: 'not a url' } }, /^notifications\.destinations\.x\.url: expected an http/],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's own ${NAME} syntax
    [{ x: { kind: 'slack', url: '${JH_NOT_SET_ANYWHERE}' } }, /^notifications\.destinations\.x\.url: environment variable JH_NOT_SET_ANYWHERE is not set/],
    [{ x: { kind: 'webhook', url: 'http://a', secret: 'short' } }, /^notifications\.destinations\.x\.secret/],
    // Unpadded base64: the standardwebhooks libraries could not sign with it.
    [
      { x: { kind: 'webhook', url: 'http://a', secret: `whsec_${'A'.repeat(33)}` } },
      /^notifications\.destinations\.x\.secret: expected a secret like whsec_<base64>/,
    ],
    [{ x: { kind: 'email', smtp: 'http://a', from: 'a@b', to: ['c@d'] } }, /^notifications\.destinations\.x\.smtp/],
  ];
  for (const [destinations, path] of bad) {
    t.throws(() => s.host.applyConfig({ notifications: { destinations } }), { code: 'CONFIG_INVALID', message: path });
  }
  // Any padded base64 is a secret the libraries sign with, 16 bytes as well as 32.
  const short = `whsec_${Buffer.alloc(16, 7).toString('base64')}`;
  t.doesNotThrow(() =>
    s.host.applyConfig({
      notifications: { destinations: { hook: { kind: 'webhook', url: 'http://127.0.0.1:1/', secret: short } }, retry: { delay: '1s', jitter: 0 } },
    }),
  );
  t.throws(() => s.host.applyConfig({ notifications: { routes: [{ to: ['nope'] }] } }), {
    message: /^notifications\.routes\.0\.to\.0: no destination "nope"/,
  });
  // Removing (or renaming) a destination a loaded job names would make every open delivery to it dead: refused.
  t.throws(() => s.host.applyConfig({ notifications: { destinations: { renamed: { kind: 'webhook', url: 'http://127.0.0.1:1/' } } } }), {
    code: 'DESTINATION_NOT_FOUND',
    message: /^notifications\.destinations\.hook: job "nightly-export" names destination "hook" \(notify\.to\), which this edit removes/,
  });
  await s.host.trigger('nightly-export');
  await notification(s, deliveryIs('retrying', 1), 'retrying against a closed port');
  s.host.applyConfig({ notifications: { destinations: { hook: { kind: 'webhook', url: hook.url } }, retry: { delay: '1s', jitter: 0 } } });
  await s.clock.advance(1000);
  await notification(s, deliveryIs('delivered', 2), 'delivered to the edited URL');
});

t.test('a restart resumes open deliveries at their time, under the same ids', async (t) => {
  const hook = await httpReceiver(t);
  hook.script({ status: 503 });
  const first = await hostWith(t, { hook: { kind: 'webhook', url: hook.url } }, undefined, { retry: { delay: '1m', jitter: 0 } });
  await first.host.trigger('nightly-export');
  const n = await notification(first, deliveryIs('retrying', 1), 'retrying');
  await first.host.stop({ graceMs: 0 });
  const again = await startServer(t, {
    dir: first.dir,
    clock: first.clock,
    config: { notifications: { destinations: { hook: { kind: 'webhook', url: hook.url } } } },
    plugins: [failing(['hook'])],
  });
  t.equal(again.host.deliveries.open(), 1, 'loaded as open');
  t.equal(hook.received.length, 1, 'not before its nextAt');
  await again.clock.advance(60_000);
  await hook.count(2);
  const after = await notification(again, deliveryIs('delivered', 2), 'delivered after the restart');
  t.equal(after.id, n.id);
  t.equal(hook.received[1]!.headers['webhook-id'], n.deliveries[0]!.id);
});

t.test("a receiver's whole answer is shown whole (plain words of the URL stay); one cut short loses a tail that starts a secret", async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 404, body: 'this receiver takes no notifications' };
  const { logger, lines } = captureLogger();
  const s = await startServer(t, {
    logger,
    config: { notifications: { destinations: { hook: { kind: 'webhook', url: `${hook.url}/notifications/inbox` } } } },
    plugins: [failing(['hook'])],
  });
  await s.host.trigger('nightly-export');
  const n = await notification(s, deliveryIs('dead'), 'dead after the 404');
  t.equal(n.deliveries[0]!.lastError?.message, 'the receiver answered 404: this receiver takes no notifications', 'lastError');
  t.match(JSON.stringify(lines), /the receiver answered 404: this receiver takes no notifications/, 'the log line');
  const tested = await s.request('POST', '/notifications/destinations/hook/test');
  t.match(tested.json, { ok: false, status: 404, body: 'this receiver takes no notifications' }, 'notify test');
  // Longer than the 1,000 characters kept: the kept start ends inside the URL's path, cut out.
  hook.fallback = { status: 404, body: `${'x'.repeat(994)}/notifications/inbox and more` };
  const cut = await s.request('POST', '/notifications/destinations/hook/test');
  t.equal(cut.json.body, `${'x'.repeat(994)}…`);
});

t.test('a routing key echoed in part is cut from the delivery, its events, the log and the test result', async (t) => {
  const pd = await httpReceiver(t);
  pd.fallback = { status: 400, body: '{"status":"invalid event","errors":["Routing key R0UT1NGKEY is invalid"]}' };
  const { logger, lines } = captureLogger();
  const s = await startServer(t, {
    logger,
    config: { notifications: { destinations: { pager: { kind: 'pagerduty', routingKey: 'R0UT1NGKEYsecret123', url: pd.url } } } },
    plugins: [failing(['pager'])],
  });
  await s.host.trigger('nightly-export');
  const n = await notification(s, deliveryIs('dead'), 'dead after the 400');
  t.equal(n.deliveries[0]!.lastError?.message, 'the receiver answered 400: {"status":"invalid event","errors":["Routing key … is invalid"]}');
  await until(() => s.of('notification.failed').length === 1, 5000, 'notification.failed');
  const tested = await s.request('POST', '/notifications/destinations/pager/test');
  t.match(tested.json, { ok: false, status: 400, body: /Routing key … is invalid/ });
  const everything = [tested.text, (await s.request('GET', '/notifications')).text, JSON.stringify(s.events), JSON.stringify(lines)].join('\n');
  t.notOk(everything.includes('R0UT1NGKEY'), 'the part of the key appears nowhere');
});

t.test('a test message to PagerDuty is a trigger of its own (severity info, a dedup_key naming a jobhost test), so someone sees it', async (t) => {
  const pd = await httpReceiver(t);
  pd.fallback = { status: 202, body: '{"status":"success"}' };
  const s = await hostWith(t, { pager: { kind: 'pagerduty', routingKey: 'R0UTINGKEY123456', url: `${pd.url}/v2/enqueue` } });
  for (let i = 0; i < 2; i++) {
    t.match((await s.request('POST', '/notifications/destinations/pager/test')).json, { ok: true, status: 202 });
    // A test's id is made of the time and a random part (the host's random is fixed here).
    await s.clock.advance(1000);
  }
  const [first, second] = pd.received.map((r) => r.json as { dedup_key: string });
  t.match(first, {
    routing_key: 'R0UTINGKEY123456',
    event_action: 'trigger',
    dedup_key: /^jobhost-test:/,
    payload: { severity: 'info', source: s.host.id, summary: /^jobhost test message: A test message from jobhost/ },
  });
  t.not(first!.dedup_key, second!.dedup_key, 'each test an alert of its own: a second is not folded into the first');
  t.same((await s.host.notifications({})).items, [], 'nothing recorded');
});
