import { appendFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ExecutableJob } from '../../../core/contract/attempt.js';
import { createManualClock } from '../../../core/contract/clock.js';
import { parseConfig } from '../../../core/contract/config.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { Notification } from '../../../core/contract/notification.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { parsePlugin } from '../../../core/contract/plugin-schema.js';
import { DEFAULT_RETRY } from '../../../core/contract/retry.js';
import { Alerts } from '../../../core/engine/alerts.js';
import { Bus } from '../../../core/engine/bus.js';
import { InlineExecutor } from '../../../core/engine/executor.js';
import { HostAlerts } from '../../../core/engine/host-alerts.js';
import { JobRegistry } from '../../../core/engine/registry.js';
import { RunEvents } from '../../../core/engine/run-events.js';
import { Notifier } from '../../../core/notify/notifier.js';
import { createLocalBackend } from '../../../core/store/local-backend.js';
import { startServer, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';

/** Host alerts and the stall watchdog (SPEC §12): degradations and silent stops, each told when it starts and when it ends. */

t.test('stall watchdog: a held dispatcher with runs ready and free slots; an overdue schedule; both clear by themselves', async (t) => {
  const hook = await httpReceiver(t);
  const clock = createManualClock(Date.UTC(2026, 0, 5, 12));
  const logger = silentLogger();
  const config = parseConfig({
    concurrency: 4,
    notifications: { destinations: { pager: { kind: 'webhook', url: hook.url } }, host: { to: ['pager'] }, stallAfter: '30s' },
  });
  const bus = new Bus({ clock, logger });
  const backend = createLocalBackend({
    dir: null,
    fsync: false,
    keepRuns: 100,
    keepDays: 1,
    concurrency: 4,
    queues: { default: 1 },
    clock,
    random: () => 0.5,
    logger,
    hostId: 'h1',
  });
  const notifier = new Notifier({ config: () => config, clock, random: () => 0.5, logger, hostId: 'h1' });
  let n = 0;
  const newId = () => `0000000000${String(++n).padStart(6, '0')}`;
  const alerts = new Alerts({ bus, clock, logger, newId, config: () => config, backend: () => backend, notifier, notifySpec: () => null });
  const registry = new JobRegistry(
    () => ({}),
    () => true,
  );
  const spec = parsePlugin(definePlugin({ name: 'nightly', schedule: '0 2 * * *', handler: () => 1 }));
  registry.set('nightly', registry.resolve(spec, { file: null, source: null }, config), 0);
  let nextFire: number | null = null;
  const watchdog = new HostAlerts({
    clock,
    logger,
    newId,
    hostId: 'h1',
    config: () => config,
    backend: () => backend,
    alerts,
    registry,
    nextFire: () => nextFire,
    cluster: () => ({ backend: 'local', self: 'h1', hosts: [], drift: [] }),
    // The host never asked for a pause: a paused dispatcher below is a held one.
    paused: () => false,
  });
  const observer = new RunEvents({ bus, watch: { started: () => watchdog.started(), finished: () => undefined, settled: () => undefined } });
  const job: ExecutableJob = {
    name: 'work',
    handler: () => 'ok',
    concurrency: 4,
    queue: 'default',
    timeoutMs: 0,
    retry: DEFAULT_RETRY,
    once: false,
    cooldownMs: 0,
  };
  await backend.open({
    job: (name) => (name === 'work' ? job : undefined),
    executor: new InlineExecutor({
      logger,
      reader: { runs: () => Promise.resolve({ items: [] }), run: () => Promise.resolve(undefined), stats: () => ({}) as never },
      publish: () => undefined,
    }),
    observer,
    flagsChanged: () => undefined,
    relay: () => undefined,
    describe: () => ({ url: null, startedAt: '', jobs: [] }),
    deliver: (a, signal) => notifier.deliver(a, signal),
    deliveryChanged: () => undefined,
  });
  backend.start();
  watchdog.start();
  t.teardown(async () => {
    watchdog.stop();
    alerts.stop();
    notifier.close();
    await backend.close();
  });

  // Hold the dispatcher: runs are admitted and wait, nothing starts them.
  backend.pause();
  const at = new Date(clock.now()).toISOString();
  for (let i = 0; i < 3; i++) {
    await backend.add(
      {
        id: `00000000run${i}`,
        job: 'work',
        status: 'queued',
        source: 'api',
        params: {},
        priority: 0,
        key: null,
        queue: 'default',
        createdAt: at,
        runAt: at,
        startedAt: null,
        endedAt: null,
        durationMs: null,
        progress: { fraction: 0, text: null },
        attempts: [],
        maxAttempts: 1,
        result: null,
        error: null,
        retryOf: null,
        event: null,
      },
      { enabled: true, configEnabled: true, once: false, cooldownMs: 0, overlap: 'allow' },
    );
  }
  await clock.advance(29_000);
  t.same(watchdog.active(), [], 'not before stallAfter');
  await clock.advance(2_000);
  t.match(watchdog.active(), [{ id: 'dispatch-stalled', message: /^3 runs ready with 4 of 4 slots free, and none started for 3\ds$/ }]);
  await hook.count(1);
  t.match(hook.received[0]!.json, {
    rule: 'host',
    status: 'failed',
    condition: 'dispatch-stalled',
    host: 'h1',
    title: 'jobhost h1: runs wait with free capacity',
  });

  // Work flows again: the alert ends by itself.
  backend.resume();
  await until(() => backend.depths().ready === 0, 5000, 'the runs started');
  await clock.advance(1000);
  t.same(watchdog.active(), []);
  await hook.count(2);
  t.match(hook.received[1]!.json, { rule: 'host', status: 'recovered', condition: 'dispatch-stalled', title: 'jobhost h1: runs start again' });

  // A scheduler that stopped: the armed fire is more than one period (a day) past.
  nextFire = clock.now() - 86_400_000 - 1000;
  await clock.advance(1000);
  t.match(watchdog.active(), [{ id: 'scheduler-stalled', message: /nightly \(due / }]);
  nextFire = clock.now() + 60_000;
  await clock.advance(1000);
  t.same(watchdog.active(), []);
  await hook.count(4);
  t.same(
    hook.received.map((r) => [(r.json as Notification).condition, (r.json as Notification).status]),
    [
      ['dispatch-stalled', 'failed'],
      ['dispatch-stalled', 'recovered'],
      ['scheduler-stalled', 'failed'],
      ['scheduler-stalled', 'recovered'],
    ],
  );
});

t.test('store damage found at start is a host alert and a /ready warning; acknowledging it ends the alert', async (t) => {
  const hook = await httpReceiver(t);
  const config = { notifications: { destinations: { pager: { kind: 'webhook' as const, url: hook.url } }, host: { to: ['pager'] } } };
  const plugin = definePlugin({ name: 'x', isolation: 'inline', handler: () => 1 });
  const first = await startServer(t, { config, plugins: [plugin] });
  await first.host.wait((await first.host.trigger('x')).runId);
  await first.host.stop({ graceMs: 0 });
  const journal = readdirSync(first.dir).find((f) => /^journal-\d+\.ndjson$/.test(f))!;
  appendFileSync(path.join(first.dir, journal), '{"r":{"id":"broken"\n');

  const s = await startServer(t, { dir: first.dir, clock: first.clock, config, plugins: [plugin] });
  await hook.count(1);
  t.match(hook.received[0]!.json, { rule: 'host', status: 'failed', condition: 'store-damaged', host: s.host.id, priority: 'high' });
  const ready = await s.request('GET', '/ready');
  t.match(ready.json['warnings'], [{ code: 'STORE_DAMAGED' }]);
  await s.host.ackStoreDamage();
  await s.clock.advance(1000);
  await hook.count(2);
  t.match(hook.received[1]!.json, { rule: 'host', status: 'recovered', condition: 'store-damaged', title: /store damage acknowledged$/ });
  await until(async () => (await s.host.notifications({})).items.every((n) => n.deliveries[0]?.status === 'delivered'), 5000, 'both recorded as delivered');
  t.equal((await s.host.notifications({})).items.length, 2, 'both recorded');
});
