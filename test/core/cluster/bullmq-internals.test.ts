import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import t from 'tap';
import {
  BULLMQ_MAX_BLOCK_MS,
  BULLMQ_MINOR,
  EVENTS_MAXLEN_FIELD,
  JOB_FIELD,
  JOB_HASH_FIELDS,
  METRICS_COUNT,
  METRICS_KEYS,
  MOVE_TO_FINISHED,
  QUEUE_KEYS,
  queueKey,
  WORKER_LIMIT_UNTIL,
  type WORKER_PROTECTED,
} from '../../../core/cluster/bullmq-internals.js';
import { type Tap, until } from '../../helpers.js';
import { startRedis, type TestRedis } from '../../redis.js';

/**
 * One test per fact of core/cluster/bullmq-internals.ts, against the installed BullMQ and a real
 * redis-server: a BullMQ upgrade that changes one fails here, by name, rather than in a run.
 */

type Exec = (client: unknown, name: string, args: unknown[]) => Promise<unknown>;

/** A Worker that records the arguments of each `moveToFinished`, overriding `createBackend` as jobhost's workers do. */
class RecordingWorker extends Worker {
  readonly ends: unknown[][] = [];

  protected override createBackend(): void {
    this.backend = this.backendFactory(this.name, this.opts, { withBlockingConnection: true });
    const backend = this.backend as unknown as { execCommand: Exec };
    const exec = backend.execCommand.bind(backend);
    backend.execCommand = (client, name, args) => {
      if (name === 'moveToFinished') this.ends.push(args);
      return exec(client, name, args);
    };
  }
}

async function setUp(t: Tap): Promise<{ redis: TestRedis; conn: Redis; prefix: string }> {
  const redis = await startRedis(t);
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  conn.on('error', () => undefined);
  t.teardown(() => conn.disconnect());
  return { redis, conn, prefix: 'bi' };
}

t.test(`BullMQ is ${BULLMQ_MINOR}.x: another minor needs every fact below checked again`, async (t) => {
  const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../../node_modules/bullmq/package.json'), 'utf8')) as { version: string };
  t.match(pkg.version, new RegExp(`^${BULLMQ_MINOR.replace('.', '\\.')}\\.`));
});

t.test('a worker can override createBackend, build its backend with backendFactory, wrap execCommand, and has a lockManager', async (t) => {
  const { conn } = await setUp(t);
  const worker = new RecordingWorker('w', null, { connection: conn, prefix: 'bi', autorun: false });
  t.teardown(() => worker.close(true));
  const members = worker as unknown as Record<(typeof WORKER_PROTECTED)[number], unknown>;
  t.type(members.backendFactory, 'function');
  t.type((members.lockManager as { start?: unknown }).start, 'function', 'lockManager.start (ManualWorker starts lock renewal itself)');
  t.type(Worker.prototype['createBackend' as keyof Worker], 'function');
  t.type((worker as unknown as { backend: { execCommand: unknown } }).backend.execCommand, 'function');
});

t.test('moveToFinished: the finished set, the job hash, the id, the value and the target sit where MOVE_TO_FINISHED says', async (t) => {
  const { conn, prefix } = await setUp(t);
  const queue = new Queue('mf', { connection: conn, prefix });
  t.teardown(() => queue.close());
  const worker = new RecordingWorker(
    'mf',
    async (job: Job) => {
      if (job.name === 'bad') throw new Error('boom');
      return 'ok';
    },
    { connection: conn, prefix },
  );
  t.teardown(() => worker.close(true));
  await queue.add('good', {}, { jobId: 'g1' });
  await queue.add('bad', {}, { jobId: 'b1' });
  await until(() => worker.ends.length === 2, 10_000, 'both jobs ended');
  const byId = new Map(worker.ends.map((args) => [String(args[MOVE_TO_FINISHED.id]), args]));
  const good = byId.get('g1')!;
  const bad = byId.get('b1')!;
  t.ok(good && bad, 'the id at its position');
  t.equal(good[MOVE_TO_FINISHED.finishedSet], queue.keys.completed);
  t.equal(bad[MOVE_TO_FINISHED.finishedSet], queue.keys.failed);
  t.equal(good[MOVE_TO_FINISHED.jobHash], `${queue.keys['']}g1`);
  t.equal(good[MOVE_TO_FINISHED.target], 'completed');
  t.equal(bad[MOVE_TO_FINISHED.target], 'failed');
  t.equal(bad[MOVE_TO_FINISHED.value], 'boom', 'the failed reason as the value');
});

t.test("the queue's keys, its metrics counts and the job hash fields jobhost's Lua reads", async (t) => {
  const { conn, prefix } = await setUp(t);
  const queue = new Queue('keys', { connection: conn, prefix });
  t.teardown(() => queue.close());
  for (const suffix of QUEUE_KEYS) t.equal(queue.keys[suffix], queueKey(prefix, 'keys', suffix), `key ${suffix}`);

  await queue.add('d', { key: 'k1' }, { jobId: 'd1', delay: 60_000 });
  t.ok(await conn.zscore(`${prefix}:keys:delayed`, 'd1'), 'a delayed job is in `delayed`');
  await queue.add('p', {}, { jobId: 'p1', priority: 5 });
  t.ok((await conn.zscore(`${prefix}:keys:prioritized`, 'p1')) !== null, 'a prioritized job is in `prioritized`');
  await queue.add('dedup', {}, { jobId: 'x1', deduplication: { id: 'k' } });
  t.equal(await conn.get(`${prefix}:keys:de:k`), 'x1', 'the deduplication key holds the id of the job holding it');
  t.ok((await conn.lrange(`${prefix}:keys:wait`, 0, -1)).includes('x1'), 'a waiting job is in `wait`');

  const worker = new Worker(
    'keys',
    async (job: Job) => {
      if (job.id === 'x1') throw new Error('nope');
      return { n: 1 };
    },
    { connection: conn, prefix, metrics: { maxDataPoints: 60 } },
  );
  t.teardown(() => worker.close(true));
  await until(async () => (await conn.zcard(`${prefix}:keys:completed`)) === 1 && (await conn.zcard(`${prefix}:keys:failed`)) === 1, 10_000, 'ended');
  const [completed, failed] = await Promise.all(METRICS_KEYS.map((k) => conn.hget(queueKey(prefix, 'keys', k), METRICS_COUNT)));
  t.same([completed, failed], ['1', '1'], 'metrics counts');
  const fields = (id: string) => conn.hmget(`${prefix}:keys:${id}`, ...JOB_HASH_FIELDS);
  const ok = await fields('p1');
  const bad = await fields('x1');
  const at = (name: (typeof JOB_HASH_FIELDS)[number]) => JOB_HASH_FIELDS.indexOf(name);
  for (const f of ['data', 'opts', 'timestamp', 'processedOn', 'finishedOn', 'returnvalue', 'atm'] as const)
    t.ok(ok[at(f)] !== null, `a completed job has ${f}`);
  t.same(JSON.parse(ok[at('returnvalue')]!), { n: 1 });
  t.equal(bad[at('failedReason')], 'nope');
  t.match(JSON.parse(bad[at('stacktrace')]!), [/nope/]);
  t.equal(ok[at('ats')], '1', 'ats counts the attempts started');
});

t.test("a job's progress, its events stream bound, the worker that took it (pb) and a deferred failure (defa)", async (t) => {
  const { conn, prefix } = await setUp(t);
  const queue = new Queue('defer', { connection: conn, prefix });
  t.teardown(() => queue.close());
  await queue.add('p', {}, { jobId: 'p1' });
  await queue.add('x', {}, { jobId: 'x1' });
  // What jobhost's cancel does to a run another host holds: BullMQ fails it at its next start, without running it.
  await conn.hset(`${prefix}:defer:x1`, JOB_FIELD.defa, 'jobhost:canceled');
  const ran: string[] = [];
  const worker = new Worker(
    'defer',
    async (job: Job) => {
      ran.push(job.id!);
      await job.updateProgress({ at: 1 });
    },
    { connection: conn, prefix, name: 'w-1' },
  );
  t.teardown(() => worker.close(true));
  await until(async () => (await conn.zcard(`${prefix}:defer:completed`)) === 1 && (await conn.zcard(`${prefix}:defer:failed`)) === 1, 10_000, 'ended');
  t.same(ran, ['p1'], 'the deferred failure did not run');
  const [progress, pb] = await conn.hmget(`${prefix}:defer:p1`, JOB_FIELD.progress, JOB_FIELD.pb);
  t.same(JSON.parse(progress!), { at: 1 });
  t.equal(pb, 'w-1');
  t.equal(await conn.hget(`${prefix}:defer:x1`, JOB_FIELD.failedReason), 'jobhost:canceled');
  t.equal(await conn.hexists(`${prefix}:defer:p1`, JOB_FIELD.finishedOn), 1);
  t.match(await conn.hget(queueKey(prefix, 'defer', 'meta'), EVENTS_MAXLEN_FIELD), /^\d+$/, 'the events bound BullMQ keeps in the meta hash');
});

t.test("a worker's longest block (BZPOPMIN) plus its watchdog's second is BULLMQ_MAX_BLOCK_MS", async (t) => {
  const { conn } = await setUp(t);
  const worker = new Worker('b', null, { connection: conn, prefix: 'bi', autorun: false });
  t.teardown(() => worker.close(true));
  const max = (worker as unknown as { maximumBlockTimeout: number }).maximumBlockTimeout;
  t.equal(max * 1000 + 1000, BULLMQ_MAX_BLOCK_MS);
});

t.test('a worker whose queue is at its global rate limit keeps when it may fetch again in WORKER_LIMIT_UNTIL', async (t) => {
  const { conn } = await setUp(t);
  const queue = new Queue('rl', { connection: conn, prefix: 'bi' });
  const worker = new Worker('rl', null, { connection: conn, prefix: 'bi', autorun: false });
  t.teardown(async () => {
    await worker.close(true);
    await queue.close();
  });
  await queue.setGlobalRateLimit(1, 5000);
  await queue.add('a', {});
  await queue.add('b', {});
  t.ok(await worker.getNextJob('tok-1', { block: false }), 'the first start is within the limit');
  const before = Date.now();
  t.equal(await worker.getNextJob('tok-2', { block: false }), undefined, 'the second is held');
  const until = (worker as unknown as Record<typeof WORKER_LIMIT_UNTIL, number>)[WORKER_LIMIT_UNTIL];
  t.ok(until > before && until <= Date.now() + 5000, `limitUntil ${until - before} ms ahead`);
});
