import parse from 'parse-prometheus-text-format';
import t from 'tap';
import { watchEventLoop } from '../../../core/server/event-loop.js';
import { startServer, until } from '../../helpers.js';

/** The main thread's event loop, watched: `/metrics` shows its delay, `/ready` degrades while it stays slow. */

/** Holds this thread's event loop for `ms` at a time, `times` times, letting timers run in between. */
async function hog(times: number, ms: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const end = Date.now() + ms;
    while (Date.now() < end) {}
    await new Promise((r) => setTimeout(r, 1));
  }
}

t.test('slow only while the delay stays above the bound, window after window', async (t) => {
  const watch = watchEventLoop({ windowMs: 100, windows: 3 });
  t.teardown(() => watch.stop());
  await hog(2, 120);
  t.notOk(watch.slow(50), 'one slow stretch is not a loop that stays slow');
  await hog(6, 120);
  t.ok(watch.slow(50), 'slow after windows in a row above the bound');
  t.ok(watch.delay().p99Ms > 50 && watch.delay().maxMs >= watch.delay().p99Ms, 'the last window shows the delay');
  t.notOk(watch.slow(0), 'a bound of 0 never degrades');
  t.notOk(watch.slow(10_000), 'nor a bound above the delay');
  // A loaded machine (the suite's other files) may keep the loop slow a while.
  await until(() => !watch.slow(50), 30_000, 'the loop to recover');
  t.ok(watch.delay().p99Ms < 50, 'an idle window after: no longer slow');
});

t.test('one block as long as the windows that make a loop slow counts as slow, for as long again once the loop turns', async (t) => {
  const watch = watchEventLoop({ windowMs: 200, windows: 3 });
  t.teardown(() => watch.stop());
  await hog(1, 150);
  t.notOk(watch.slow(50), 'a block shorter than 3 windows is one late timer');
  // Its windows never close while it lasts, and the one that closes after it has ~20 quick samples to one slow.
  await hog(1, 900);
  t.ok(watch.slow(50), 'slow right after it');
  t.ok(watch.block() >= 600, `the block that makes it slow is told (${watch.block()} ms): the host alert says it, not the quick window after`);
  t.notOk(watch.slow(0), 'a bound of 0 never degrades');
  t.notOk(watch.slow(10_000), 'nor a bound above the block');
  await until(() => !watch.slow(50), 30_000, 'quick again');
  t.equal(watch.block(), 0, 'no block once it no longer counts');
});

t.test('/ready is degraded while the event loop stays slow; /metrics shows the delay', async (t) => {
  const { request, metrics } = await startServer(t, { config: { eventLoop: { maxDelay: '50ms' } }, server: { eventLoop: { windowMs: 100, windows: 3 } } });
  // Under a loaded machine (the suite's other files) a 50 ms bound may be passed before the hog: wait for a quick loop first.
  await until(async () => (await request('GET', '/ready')).status === 200, 10_000, 'ready while the loop is quick');
  // prom-client loads with the first scrape: scrape once before, so the scrape read below is of
  // the slow loop, not of the quick one the import's time lets it recover to.
  await metrics();
  await hog(8, 120);
  const ready = await request('GET', '/ready');
  t.equal(ready.status, 503);
  t.match(ready.json, { ready: false, status: 'degraded', eventLoop: { slow: true, maxDelayMs: 50 } });
  t.ok((ready.json['eventLoop'] as { p99Ms: number }).p99Ms > 50);
  const families = parse(await metrics());
  const family = (name: string) => families.find((f) => f.name === name);
  t.match(family('jobhost_event_loop_slow')?.metrics, [{ value: '1' }]);
  const p99 = family('jobhost_event_loop_delay_seconds')?.metrics.find((m) => 'labels' in m && m.labels?.['stat'] === 'p99');
  t.ok(p99 && 'value' in p99 && Number(p99.value) > 0.05, 'the p99 delay in seconds');
  await until(async () => (await request('GET', '/ready')).status === 200, 5000, 'ready again once the loop is quick');
});
