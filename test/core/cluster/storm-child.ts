import { createHost, silentLogger } from '../../../core/index.js';

/**
 * A cluster host in a process of its own, for a kill -9 in storm control: its job `stormy` fails
 * `runs` times, notifying a webhook under a throttle of `throttle` ms; once every run has ended
 * it says `ended` and waits to be killed (the test reads the held-back counts in Redis).
 * Argv: the Redis URL, the prefix, the webhook URL, the throttle (ms), the runs.
 */
const [url, prefix, hook, throttle, runs] = process.argv.slice(2) as [string, string, string, string, string];
const host = createHost({
  config: {
    backend: { kind: 'redis', url, prefix, lockDuration: 1000, stalledInterval: 500 },
    cluster: { id: 'doomed' },
    notifications: { throttle: Number(throttle), destinations: { hook: { kind: 'webhook', url: hook } } },
  },
  logger: silentLogger(),
});
host.register({
  name: 'stormy',
  isolation: 'inline',
  notify: { on: ['failed'], to: ['hook'] },
  handler: () => {
    throw new Error('boom');
  },
});
await host.start();
const ids = [];
for (let i = 0; i < Number(runs); i++) ids.push((await host.trigger('stormy')).runId);
for (const id of ids) await host.wait(id);
process.stdout.write('ended\n');
setInterval(() => undefined, 60_000);
