import { Redis } from 'ioredis';
import t from 'tap';
import { RelayBacklog } from '../../../core/cluster/backlog.js';
import { EventRelay } from '../../../core/cluster/event-relay.js';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { captureLogger, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** The relay's backlog (core/cluster/backlog.ts): bounded while Redis does not answer, drops counted. */

t.test('while Redis does not answer, events waiting for it stay within the bound; the rest are dropped and counted; the kept ones land', async (t) => {
  const redis = await startRedis(t);
  // The relay's connection as the backend makes it: patient (offline queue, retries forever).
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  conn.on('error', () => undefined);
  t.teardown(() => conn.disconnect());
  await conn.ping();
  const { logger, lines } = captureLogger();
  const backlog = new RelayBacklog(logger, 100);
  const relay = new EventRelay(conn, 'relay-test', 'h1', logger, 50_000, backlog);
  const event = (i: number): AnyHostEvent => ({ type: 'job.enabled', at: new Date().toISOString(), data: { job: `j${i}` } }) as unknown as AnyHostEvent;
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

  process.kill(redis.pid, 'SIGSTOP');
  let thawed = false;
  t.teardown(() => void (thawed || process.kill(redis.pid, 'SIGCONT')));
  // 300 turns of 10 events: one XADD each, none answered.
  for (let i = 0; i < 300; i++) {
    for (let j = 0; j < 10; j++) relay.share(event(i * 10 + j));
    await turn();
  }
  t.equal(backlog.pending, 100, 'the backlog stops at its bound');
  t.equal(backlog.dropped, 2900, 'everything past it is dropped and counted');
  t.equal(lines.filter((l) => l['level'] === 40).length, 1, 'one warning for the outage, not one per drop');

  process.kill(redis.pid, 'SIGCONT');
  thawed = true;
  await until(() => backlog.pending === 0, 10_000, 'the kept events reached Redis');
  t.equal(await conn.xlen('relay-test'), 10, 'the ten kept XADDs landed');
  relay.share(event(9999));
  await until(async () => (await conn.xlen('relay-test')) === 11, 5000, 'events are shared again');
  t.equal(backlog.dropped, 2900);
});
