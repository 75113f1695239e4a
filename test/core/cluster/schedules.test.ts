import t from 'tap';
import { createManualClock, systemClock } from '../../../core/contract/clock.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import type { Run } from '../../../core/contract/run.js';
import { CATCH_UP_GRACE_MS } from '../../../core/engine/fires.js';
import { fireRunId } from '../../../core/engine/ids.js';
import { freshPrefix, startCluster } from '../../cluster.js';
import { until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';
import { startRedis } from '../../redis.js';

/**
 * Schedule fires on the redis backend: every host fires the jobs it has loaded, and the add admits
 * one run per job and fire time (the job's `lastFireAt` checked and set in the add's MULTI).
 */

const tick = (catchUp: boolean) => definePlugin({ name: 'tick', schedule: '* * * * * *', catchUp, handler: () => 1 });

async function allRuns(host: { runs(q: { job: string; limit: number }): Promise<{ items: Run[] }> }): Promise<Run[]> {
  return (await host.runs({ job: 'tick', limit: 1000 })).items;
}

t.test('catchUp after the whole cluster was down across three fires: two hosts start together, one catch-up run in all', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const [first] = await startCluster(t, redis, 1, { prefix, plugins: [tick(true)] });
  await until(async () => (await allRuns(first!.host)).length >= 2, 10_000, 'two fires');
  await first!.host.stop({ graceMs: 1000 });
  const lastFire = Math.max(...(await redis.client().hmget(`${prefix}:__jh:job:tick`, 'lastFireAt')).map(Number));
  t.ok(lastFire > 0, 'the last fire is on record');
  // Three fires pass with no host up, and the grace after which a fire counts as missed.
  await until(() => Date.now() >= lastFire + 3000 + 1600, 10_000, 'three fires missed');

  const later = await startCluster(t, redis, 2, { prefix, plugins: [tick(true)], first: 1, start: false });
  const startedAt = Date.now();
  await Promise.all(later.map((h) => h.host.start()));
  await until(async () => (await allRuns(later[0]!.host)).some((r) => Date.parse(r.createdAt) >= startedAt + 2000), 10_000, 'fires after the start');
  const runs = await allRuns(later[1]!.host);
  const catchUps = runs.filter((r) => r.source === 'catch-up');
  t.equal(catchUps.length, 1, `one catch-up run: ${JSON.stringify(catchUps.map((r) => r.id))}`);
  t.equal(catchUps[0]?.id, fireRunId('tick', lastFire + 1000), 'it stands for the first missed fire');
  const ids = runs.map((r) => r.id);
  t.equal(new Set(ids).size, ids.length, 'no run listed twice');
  const missed = runs.filter((r) => r.source === 'schedule' && Date.parse(r.createdAt) > lastFire + 500 && Date.parse(r.createdAt) < startedAt);
  t.same(missed, [], 'no schedule run for the fires while every host was down');
  t.equal(later[0]!.of('run.skipped').length + later[1]!.of('run.skipped').length, 0, 'the host that lost the catch-up reported no skip');
});

t.test('a host whose clock is 2 s behind makes each fire after the run of it is gone (retention): not run again, no skip reported', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const ran: string[] = [];
  const plugin = definePlugin({ name: 'tick', schedule: '* * * * * *', handler: (ctx) => void ran.push(ctx.runId) });
  const behind = { now: () => Date.now() - 2000, setTimer: systemClock.setTimer.bind(systemClock) };
  const hosts = await startCluster(t, redis, 2, {
    prefix,
    plugins: [plugin],
    config: { store: { keepRuns: 1 } },
    clockOf: (i) => (i === 1 ? behind : systemClock),
  });
  await until(() => ran.length >= 6, 15_000, 'six fires');
  const seen = new Set<string>();
  const twice = ran.filter((id) => seen.size === seen.add(id).size);
  t.same(twice, [], `each fire ran once: ${ran.length} runs`);
  t.ok(
    ran.every((id) => id === fireRunId('tick', Number.parseInt(id.slice(0, 9), 36))),
    'every run id is its fire time’s',
  );
  t.equal(hosts[0]!.of('run.skipped').length + hosts[1]!.of('run.skipped').length, 0, 'the late host reports no skip');
  t.equal(hosts[1]!.of('run.queued').length, 0, 'the late host added none of them');
});

t.test('enabling a job marks its schedule as counting from then: a restart before its next fire makes no catch-up for its disabled stretch', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const hourly = { name: 'hourly', schedule: '0 * * * *', catchUp: true, handler: () => 1 };
  const marker = { name: 'marker', handler: () => 1 };
  const [a] = await startCluster(t, redis, 1, { prefix, plugins: [hourly, marker], clockOf: () => clock });
  await clock.set(Date.parse('2026-01-05T11:00:00Z'));
  await until(() => a!.of('run.succeeded').length === 1, 10_000, 'fired at 11:00');
  await a!.host.disable('hourly');
  // Disabled over the 12:00 to 15:00 fires (the host up), enabled at 15:30.
  await clock.set(Date.parse('2026-01-05T15:30:00Z'));
  await a!.host.enable('hourly');
  const lastFireAt = async (): Promise<number> => Number(await redis.client().hget(`${prefix}:__jh:job:hourly`, 'lastFireAt'));
  // A grace behind the enabling host's clock: a host whose clock is behind by less still makes its next fire.
  await until(async () => (await lastFireAt()) === Date.parse('2026-01-05T15:30:00Z') - CATCH_UP_GRACE_MS, 10_000, 'the mark');
  await clock.set(Date.parse('2026-01-05T15:45:00Z'));
  await a!.host.stop({ graceMs: 500 });
  const [b] = await startCluster(t, redis, 1, { prefix, plugins: [hourly, marker], clockOf: () => clock, first: 1 });
  // The start made its catch-up add, if any, before it resolved; a run triggered after it ends after it.
  await b!.host.wait((await b!.host.trigger('marker')).runId);
  t.same(
    b!.of('run.queued').map((e) => e.data.job),
    ['marker'],
    'no catch-up run: the fires of the disabled stretch were never due',
  );
});

t.test('a schedule fire that comes due while Redis is out of reach is added once Redis answers: it runs, once', async (t) => {
  const redis = await startRedis(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const hourly = { name: 'hourly', schedule: '0 * * * *', isolation: 'inline' as const, handler: () => 1 };
  const [a] = await startCluster(t, redis, 1, { plugins: [hourly], clockOf: () => clock });
  await redis.stop();
  await clock.set(Date.parse('2026-01-05T11:00:00Z'));
  await redis.restart();
  // Retries come on the host's clock: moved on until the add goes through (the connection is back within ~2 s).
  await until(
    async () => {
      await clock.advance(500);
      return a!.of('run.succeeded').length === 1;
    },
    15_000,
    'the 11:00 fire run once Redis answers',
  );
  await clock.advance(30_000);
  const runs = (await a!.host.runs({ job: 'hourly', limit: 10 })).items;
  t.equal(runs.length, 1, 'one run of the fire, no second add of it');
  t.equal(runs[0]!.source, 'schedule');
});

t.test('a newer fire while an older one waits for Redis: the older is told missed once Redis answers, the newer runs', async (t) => {
  const redis = await startRedis(t);
  const hook = await httpReceiver(t);
  const clock = createManualClock(Date.parse('2026-01-05T10:30:00Z'));
  const hourly = {
    name: 'hourly',
    schedule: '0 * * * *',
    isolation: 'inline' as const,
    notify: { on: ['missed' as const], to: ['hook'] },
    handler: () => 1,
  };
  const [a] = await startCluster(t, redis, 1, {
    plugins: [hourly],
    clockOf: () => clock,
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } },
  });
  await redis.stop();
  await clock.set(Date.parse('2026-01-05T11:00:00Z'));
  await clock.set(Date.parse('2026-01-05T12:00:00Z'));
  // The 11:00 fire, given up for the newer one, is claimed as missed while Redis is still away.
  await clock.advance(2000);
  await redis.restart();
  await until(
    async () => {
      await clock.advance(500);
      return a!.of('run.succeeded').length === 1 && hook.received.length === 1;
    },
    20_000,
    'the 12:00 fire run, the 11:00 one told missed',
  );
  const runs = (await a!.host.runs({ job: 'hourly', limit: 10 })).items;
  t.equal(runs.length, 1, 'one run: the newer fire');
  t.match(hook.received[0]!.json, {
    rule: 'missed',
    message: /missed its schedule fire at 2026-01-05T11:00:00\.000Z: the fire could not make a run \(BACKEND_UNAVAILABLE\)/,
  });
});
