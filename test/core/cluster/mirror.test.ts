import t from 'tap';
import { METRICS_COUNT, queueKey } from '../../../core/cluster/bullmq-internals.js';
import { ClusterKeys } from '../../../core/cluster/keys.js';
import { Mirror } from '../../../core/cluster/mirror.js';
import { defineScripts, type ScriptedRedis } from '../../../core/cluster/scripts.js';
import { createManualClock } from '../../../core/contract/clock.js';
import type { Run } from '../../../core/contract/run.js';
import { captureLogger, gate, type Tap } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/**
 * A host's mirror counts the runs it ended at once and every host's from its reads of Redis. The
 * end of a run is written first, then told to the mirror; a read whose reply comes between the
 * two has the run already. Taking the larger of the two counts then counted it twice, for good
 * (a CI run saw `succeeded: 1001` after 1,000 runs). Redis's side here is written by hand: what
 * BullMQ's end and our fold leave (the metrics count, `folds`), so each order is made on purpose.
 */

const JOB = 'count';

function ended(id: string, status: 'succeeded' | 'failed'): Run {
  const at = new Date(Date.UTC(2026, 0, 1)).toISOString();
  return {
    id,
    job: JOB,
    status,
    params: {},
    source: 'api',
    createdAt: at,
    runAt: at,
    startedAt: at,
    endedAt: at,
    durationMs: 1,
    attempts: [],
    result: null,
    error: null,
  } as unknown as Run;
}

/** A mirror reading `keys` through `client`, stopped when the test ends. */
function mirrorOn(t: Tap, client: ScriptedRedis, keys: ClusterKeys, concurrencyOf: (name: string) => number | undefined = () => undefined): Mirror {
  const mirror = new Mirror({
    redis: client,
    keys,
    clock: createManualClock(),
    logger: captureLogger().logger,
    settingsTtlMs: 60_000,
    lockDuration: 30_000,
    stalledInterval: 15_000,
    flagsChanged: () => undefined,
    queueOf: () => undefined,
    concurrencyOf,
    canceledReason: 'canceled',
  });
  t.teardown(() => mirror.stop());
  return mirror;
}

t.test('a run this host ended is counted once, whichever comes first: its end told here or a read that has it', async (t) => {
  const redis = await startRedis(t);
  const client = defineScripts(redis.client());
  const keys = new ClusterKeys(`mirror-${process.pid}`);
  const mirror = mirrorOn(t, client, keys);
  await client.sadd(keys.jobs, JOB);
  /** What the MULTI ending a run leaves in Redis: BullMQ's count and our fold's, in one step. */
  const written = async (completed: number, failed = 0): Promise<void> => {
    await client
      .multi()
      .hset(queueKey(keys.prefix, JOB, 'metrics:completed'), METRICS_COUNT, completed)
      .hset(queueKey(keys.prefix, JOB, 'metrics:failed'), METRICS_COUNT, failed)
      .hset(keys.jobState(JOB), 'folds', completed + failed)
      .exec();
  };
  const counts = () => ({ ...mirror.state(JOB).counts });

  // A first read learns the job (a job new to the reader is read again at once).
  await mirror.refresh();
  t.same(counts(), { succeeded: 0, failed: 0, canceled: 0 }, 'nothing ended yet');

  // The CI case: the end is written, a read has it, and only then is the end told here.
  await written(1);
  await mirror.refresh();
  t.equal(counts().succeeded, 1, 'the read counts the run');
  mirror.finished(ended('r1', 'succeeded'), true, 1);
  t.equal(counts().succeeded, 1, 'told after a read that had it: not counted again');
  await mirror.refresh();
  t.equal(counts().succeeded, 1, 'and the next read agrees');

  // Told before any read has it: counted at once, and a later read does not add it again.
  await written(2);
  mirror.finished(ended('r2', 'succeeded'), true, 2);
  t.equal(counts().succeeded, 2, 'told first: counted at once');
  await mirror.refresh();
  t.equal(counts().succeeded, 2, 'the read sent after it has it: still 2');

  // A read sent before the end was written (on the same connection, so Redis runs it first), its
  // reply after the end was told: the end stays on top.
  const older = mirror.refresh();
  const write = written(3);
  mirror.finished(ended('r3', 'succeeded'), true, 3);
  await older;
  t.equal(counts().succeeded, 3, 'a read older than the end does not undo it');
  await write;
  await mirror.refresh();
  t.equal(counts().succeeded, 3, 'the next read has it: 3, not 4');

  // A read sent before the end was told, but after it was written (its fold says so): once.
  await written(3, 1);
  const racing = mirror.refresh();
  mirror.finished(ended('r4', 'failed'), true, 4);
  await racing;
  t.same(counts(), { succeeded: 3, failed: 1, canceled: 0 }, 'the fold tells that the read already had it');

  // An end whose place is unknown (no fold answer): on top of a read sent before it, in the next.
  await written(3, 2);
  const before = mirror.refresh();
  mirror.finished(ended('r5', 'failed'), true);
  await before;
  t.equal(counts().failed, 3, 'without a fold, counted on top of the read that may have it (for one read at most)');
  await mirror.refresh();
  t.equal(counts().failed, 2, 'the read sent after it settles the count');

  // A run canceled while it ran: its count is a write of its own after the end, and until that
  // lands no read has it, however late the read.
  const canceled = gate();
  mirror.finished({ ...ended('r6', 'failed'), status: 'canceled' } as Run, true, undefined, canceled.promise);
  await mirror.refresh();
  t.equal(counts().canceled, 1, 'a read sent while the count is under way does not drop the run');
  await client.hset(keys.jobState(JOB), 'canceled', 1);
  canceled.open();
  await canceled.promise;
  await mirror.refresh();
  t.equal(counts().canceled, 1, 'once the count landed, the next read has it: 1, not 2');

  // Another host's ends come only from the reads.
  await written(10, 2);
  await mirror.refresh();
  t.same(counts(), { succeeded: 10, failed: 2, canceled: 1 }, "other hosts' ends, as read");
});

t.test("depths: runs the job's cluster concurrency holds back, or of a job this host does not run, are parked, not ready", async (t) => {
  const redis = await startRedis(t);
  const client = defineScripts(redis.client());
  const keys = new ClusterKeys(`depths-${process.pid}`);
  const limits: Record<string, number> = { 'one-at-a-time': 1, wide: 4 };
  const mirror = mirrorOn(t, client, keys, (name) => limits[name]);
  await client.sadd(keys.jobs, 'one-at-a-time', 'wide', 'elsewhere');
  // Three waiting runs of each job; one running of the first (on some host).
  for (const job of ['one-at-a-time', 'wide', 'elsewhere']) await client.lpush(queueKey(keys.prefix, job, 'wait'), 'a', 'b', 'c');
  await client.lpush(queueKey(keys.prefix, 'one-at-a-time', 'active'), 'r');
  await mirror.refresh();
  await mirror.refresh();
  t.match(
    mirror.depths(),
    { ready: 3, parked: 6, running: 1 },
    "wide's three are ready; one-at-a-time's wait for its running one; elsewhere's are not this host's",
  );
  await client.del(queueKey(keys.prefix, 'one-at-a-time', 'active'));
  await mirror.refresh();
  t.match(mirror.depths(), { ready: 4, parked: 5, running: 0 }, 'its run ended: one of its three may start');
});
