import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import { parseConfig } from '../../../core/contract/config.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { parsePlugin } from '../../../core/contract/plugin-schema.js';
import { Missed } from '../../../core/engine/missed.js';
import { JobRegistry } from '../../../core/engine/registry.js';
import { createLocalBackend } from '../../../core/store/local-backend.js';
import type { Tap } from '../../helpers.js';

/** The `missed` rule (core/engine/missed.ts) on the local backend in memory: what it tells of each fire, and when. */

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

function setup(t: Tap) {
  const clock = createManualClock(T0);
  const logger = silentLogger();
  const config = parseConfig({});
  const backend = createLocalBackend({
    dir: null,
    fsync: false,
    keepRuns: 100,
    keepDays: 1,
    concurrency: 1,
    queues: { default: 1 },
    clock,
    random: () => 0.5,
    logger,
    hostId: 'h1',
  });
  const registry = new JobRegistry(
    (name) => backend.jobState(name),
    () => true,
  );
  const spec = parsePlugin(
    definePlugin({ name: 'tick', schedule: '* * * * * *', notify: { on: ['missed'], missedAfter: '2s', to: ['hook'] }, handler: () => 1 }),
  );
  registry.set('tick', registry.resolve(spec, { file: null, source: null }, config), 0);
  const told: Array<{ fireAt: string; reason: string }> = [];
  const missed = new Missed({
    clock,
    logger,
    backend: () => backend,
    job: (name) => registry.get(name)?.job,
    alert: (_job, fireAt, reason) => void told.push({ fireAt: new Date(fireAt).toISOString(), reason }),
  });
  t.teardown(() => missed.stop());
  return { clock, missed, told };
}

t.test('a run that started before its watch was set is in time only if it started by the deadline', async (t) => {
  const { clock, missed, told } = setup(t);
  const fireAt = T0 + 1000;
  await clock.set(fireAt);
  // In time: started at once, its add's answer (and the watch) after.
  missed.started('run-in-time', 'schedule');
  missed.fired('tick', fireAt, 'run-in-time', '');
  await clock.advance(5000);
  t.same(told, [], 'started in time: not missed');

  // Late: the host stalled between the fire and its run's start, the add's answer after the start.
  const late = clock.now();
  await clock.advance(2001);
  missed.started('run-late', 'schedule');
  missed.fired('tick', late, 'run-late', '');
  await clock.advance(0);
  t.same(
    told,
    [{ fireAt: new Date(late).toISOString(), reason: 'its run run-late started more than 2s after the fire' }],
    'started after the deadline: missed, once',
  );
  await clock.advance(5000);
  t.equal(told.length, 1);
});
