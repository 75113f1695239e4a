import t, { type Test } from 'tap';
import { ClusterKeys } from '../../../core/cluster/keys.js';
import { defineScripts } from '../../../core/cluster/scripts.js';
import { startRedis } from '../../redis.js';

/**
 * The scripts behind untold run ends (core/cluster/untold-scripts.ts), on a real redis-server:
 * which marks a look takes, and how far it looks; that a mark goes only from the host holding it;
 * and the fence a notification's record passes. Marks are written in the layout `jhFold` writes
 * (`outcome \t failStreak \t endedStreak \t job \t host \t recorded \t first`); the tests of whole
 * hosts killed between an end and its notification are in alerts.test.ts.
 */

const MIN_AGE = '2000';
const GRACE = '30000';
const DAY = '86400000';

async function setUp(t: Test) {
  const redis = await startRedis(t);
  const client = defineScripts(redis.client());
  const keys = new ClusterKeys(`u${process.pid}`);
  const [secs, micros] = await client.time();
  const now = Number(secs) * 1000 + Math.floor(Number(micros) / 1000);
  /** A mark made `age` ms ago (its score; `first`: when the end made it, default the same). */
  const mark = (id: string, job: string, host: string, age: number, first = age, recorded = '') =>
    client
      .multi()
      .zadd(keys.untold, now - age, id)
      .hset(keys.untoldEnds, id, ['failed', '1', '0', job, host, recorded, String(now - first)].join('\t'))
      .exec();
  /** One look by host `me`, alive among `live`, that can tell `jobs`. */
  const take = async (me: string, live: string[], jobs: string[], offset = 0, most = 100) => {
    const [looked, ...rest] = await client.jhTakeUntold(
      keys.untold,
      keys.untoldEnds,
      MIN_AGE,
      GRACE,
      String(most),
      DAY,
      me,
      String(offset),
      String(live.length),
      ...live,
      ...jobs,
    );
    const taken: string[][] = [];
    for (let i = 0; i < rest.length; i += 5) taken.push(rest.slice(i, i + 5) as string[]);
    return { looked: Number(looked), taken };
  };
  const hostOf = async (id: string) => (await client.hget(keys.untoldEnds, id))?.split('\t')[4];
  return { client, keys, mark, take, hostOf };
}

t.test('a look takes the marks of a job it can tell whose host is gone, or that are past the grace; the others stay', async (t) => {
  const { client, keys, mark, take, hostOf } = await setUp(t);
  await mark('dead-mine', 'mine', 'gone 1', 5000);
  await mark('dead-other', 'other', 'gone 1', 5000);
  await mark('live-young', 'mine', 'alive 1', 5000);
  await mark('live-old', 'mine', 'alive 1', 40_000);
  await mark('too-young', 'mine', 'gone 1', 500);
  const { taken } = await take('me 1', ['me 1', 'alive 1'], ['mine']);
  t.same(taken.map((e) => e[0]).sort(), ['dead-mine', 'live-old'], 'a dead host’s mark, and a live host’s past the grace');
  t.same(
    taken.find((e) => e[0] === 'dead-mine'),
    ['dead-mine', 'failed', '1', '0', ''],
    'with the outcome, the streaks and what was recorded',
  );
  t.equal(await hostOf('dead-mine'), 'me 1', 'moved to the host that took it');
  t.equal(await hostOf('dead-other'), 'gone 1', 'a job this host cannot tell is left for one that can');
  t.equal(await hostOf('live-young'), 'alive 1');
  const score = Number(await client.zscore(keys.untold, 'dead-mine'));
  const [secs] = await client.time();
  t.ok(Math.abs(score - Number(secs) * 1000) < 2000, 'scored now: another host waits a grace for it');
  t.same((await take('other 1', ['other 1', 'me 1', 'alive 1'], ['mine'])).taken, [], 'nor does another host take it while the taker lives');
});

t.test('a full window of marks this host cannot take does not hide the newer ones: the next look starts past it', async (t) => {
  const { mark, take } = await setUp(t);
  for (let i = 0; i < 30; i++) await mark(`stuck-${String(i).padStart(2, '0')}`, 'other', 'gone 1', 10_000 - i);
  await mark('behind', 'mine', 'gone 1', 5000);
  // A window of 10 × the most to take (3): 30 marks of a job no host here has fill it.
  const first = await take('me 1', ['me 1'], ['mine'], 0, 3);
  t.equal(first.looked, 30);
  t.same(first.taken, [], 'the window held only marks it cannot take');
  const next = await take('me 1', ['me 1'], ['mine'], first.looked, 3);
  t.same(
    next.taken.map((e) => e[0]),
    ['behind'],
    'taken from past the window',
  );
});

t.test('a mark is dropped a day after its end, however often it was taken since; an unreadable one at once', async (t) => {
  const { client, keys, mark, take } = await setUp(t);
  // Taken 5 s ago (its score), made by its end two days ago.
  await mark('ancient', 'mine', 'gone 1', 5000, 2 * 86_400_000);
  await client.multi().zadd(keys.untold, 0, 'garbled').hset(keys.untoldEnds, 'garbled', 'not a mark').exec();
  const { taken } = await take('me 1', ['me 1'], ['mine']);
  t.same(taken.sort(), [
    ['ancient', '', 'old', '', ''],
    ['garbled', '', 'unreadable', '', ''],
  ]);
  t.equal(await client.zcard(keys.untold), 0);
  t.equal(await client.hlen(keys.untoldEnds), 0);
});

t.test('a mark goes only from the host that holds it', async (t) => {
  const { client, keys, mark, hostOf } = await setUp(t);
  await mark('mine', 'job', 'me 1', 100);
  await mark('taken-over', 'job', 'other 1', 100);
  await client.jhDropUntold(keys.untold, keys.untoldEnds, 'me 1', 'mine', 'taken-over', 'never-marked');
  t.equal(await client.zscore(keys.untold, 'mine'), null, 'its own: dropped');
  t.equal(await hostOf('mine'), undefined);
  t.equal(await hostOf('taken-over'), 'other 1', 'one another host took over: kept for it');
  t.not(await client.zscore(keys.untold, 'taken-over'), null);
});

t.test('the record of a run end’s notification passes the fence only while its host holds the mark, and notes its status there', async (t) => {
  const { client, keys, mark } = await setUp(t);
  await mark('run-1', 'job', 'me 1', 100);
  const add = (id: string, host: string, status: string) =>
    client.jhAddNotification(
      keys.notification(id),
      keys.notifications,
      keys.openDeliveries,
      keys.untoldEnds,
      id,
      '{}',
      'job',
      '1000',
      '1000',
      'run-1',
      host,
      status,
    );
  t.same(await add('n-1', 'me 1', 'recovered'), [1], 'recorded by the holder');
  t.match(await client.hget(keys.untoldEnds, 'run-1'), /\tme 1\trecovered,\t\d+$/, 'its status noted in the mark');
  t.same(await add('n-2', 'other 1', 'succeeded'), [-1], 'another host: fenced');
  t.equal(await client.exists(keys.notification('n-2')), 0, 'nothing of it written');
  t.same(await add('n-3', 'me 1', 'succeeded'), [1]);
  t.match(await client.hget(keys.untoldEnds, 'run-1'), /\trecovered,succeeded,\t/);
  await client.hdel(keys.untoldEnds, 'run-1');
  t.same(await add('n-4', 'me 1', 'failed'), [-1], 'a mark gone (told by the host that took it): fenced');
  const unfenced = await client.jhAddNotification(
    keys.notification('n-5'),
    keys.notifications,
    keys.openDeliveries,
    keys.untoldEnds,
    'n-5',
    '{}',
    'job',
    '1000',
    '1000',
    '',
    '',
    'failed',
  );
  t.same(unfenced, [1], 'a notification that is not a fenced end is recorded as before');
});
