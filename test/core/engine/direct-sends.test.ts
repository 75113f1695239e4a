import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { parseConfig } from '../../../core/contract/config.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { Notification } from '../../../core/contract/notification.js';
import { DirectSends } from '../../../core/engine/direct-sends.js';
import { Notifier } from '../../../core/notify/notifier.js';
import { until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';

/** Notifications sent without the backend (the alert that Redis is out of reach): retried in memory, ended by a stop. */

function setUp(url: string) {
  const clock = createManualClock(Date.UTC(2026, 0, 5, 12));
  const logger = silentLogger();
  const config = parseConfig({
    notifications: { destinations: { pager: { kind: 'webhook', url } }, retry: { attempts: 3, delay: '10s', backoff: 'fixed', jitter: 0 } },
  });
  const notifier = new Notifier({ config: () => config, clock, random: () => 0.5, logger, hostId: 'h1' });
  const n: Notification = {
    id: 'n1',
    job: '',
    runId: '',
    status: 'failed',
    title: 'jobhost h1: the backend is out of reach',
    message: 'redis backend out of reach',
    priority: 'high',
    tags: ['host'],
    at: new Date(clock.now()).toISOString(),
    rule: 'host',
    host: 'h1',
    condition: 'backend-unavailable',
    deliveries: notifier.deliveries({ id: 'n1', at: new Date(clock.now()).toISOString() } as Notification, ['pager']),
  };
  return { clock, sends: new DirectSends({ clock, logger, notifier }), n };
}

t.test('a receiver that fails is tried again after the retry delay until it takes the message; then no more', async (t) => {
  const hook = await httpReceiver(t);
  hook.script({ status: 503, body: 'busy' });
  const { clock, sends, n } = setUp(hook.url);
  t.teardown(() => sends.stop());
  sends.send(n);
  await hook.count(1);
  await until(() => clock.pending() > 0, 5000, 'the retry armed');
  await clock.advance(10_000);
  await hook.count(2);
  t.equal(hook.received[1]!.headers['webhook-id'], 'msg_n1_0', 'the same message id');
  await clock.advance(60_000);
  t.equal(hook.received.length, 2, 'delivered: not sent again');
});

t.test('a stop drops the waiting retry', async (t) => {
  const hook = await httpReceiver(t);
  hook.fallback = { status: 503, body: 'busy' };
  const { clock, sends, n } = setUp(hook.url);
  sends.send(n);
  await hook.count(1);
  await until(() => clock.pending() > 0, 5000, 'the retry armed');
  sends.stop();
  await clock.advance(60_000);
  t.equal(hook.received.length, 1, 'nothing after the stop');
});
