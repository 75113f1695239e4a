import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freshPrefix } from '../cluster.js';
import { type Tap, tempDir, until } from '../helpers.js';
import { startRedis, type TestRedis } from '../redis.js';
import { makeProject, type Running, runCli } from './project.js';

/**
 * `rateLimit` (SPEC §13) in cluster mode, as users run it: three `jobhost start` processes on one
 * private redis-server share the job's limit (BullMQ's limiter on the job's queue), so the starts
 * of all hosts together never pass `max` per window.
 */

const MAX = 3;
const PER_MS = 2000;
const RUNS = 12;

/** Appends `<epoch ms> <host>` for every attempt it starts. */
function limitedPlugin(file: string): string {
  return `import { appendFileSync } from 'node:fs';
export default {
  name: 'limited',
  concurrency: 50,
  rateLimit: { max: ${MAX}, per: ${PER_MS} },
  handler(ctx) {
    appendFileSync(${JSON.stringify(file)}, Date.now() + ' ' + process.env.HOST_ID + '\\n');
    return null;
  },
};
`;
}

interface HostProcess extends Running {
  url: string;
}

async function startHostProcess(t: Tap, redis: TestRedis, prefix: string, id: string, plugin: string): Promise<HostProcess> {
  const dir = makeProject(
    t,
    { server: { port: 0 }, backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000 }, cluster: { id } },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins', 'limited.ts'), plugin);
  const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'info', HOST_ID: id });
  const line = await app
    .waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), `${id} started`, { ms: 90_000 })
    .catch((err: Error) => {
      throw new Error(`${err.message}; last lines: ${JSON.stringify(app.lines.slice(-3))}; stderr: ${app.stderr().slice(-2000)}`);
    });
  return Object.assign(app, { url: line['url'] as string });
}

const post = (url: string, body: unknown = {}): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * The starts grouped as BullMQ's limiter counts them: a window opens at the first start after the
 * last one closed. `slackMs` allows for the time between BullMQ's start and the handler's clock
 * read, so a start of the next window is never counted in this one.
 */
function windows(starts: number[], perMs: number, slackMs: number): number[] {
  const counts: number[] = [];
  let opened = -Infinity;
  for (const at of [...starts].sort((a, b) => a - b)) {
    if (at >= opened + perMs - slackMs) {
      opened = at;
      counts.push(0);
    }
    counts[counts.length - 1]!++;
  }
  return counts;
}

t.test('three host processes: a rateLimit holds across them (never more than max starts per window), and no run is refused', async (t) => {
  const redis = await startRedis(t);
  const file = path.join(tempDir(t), 'starts.log');
  writeFileSync(file, '');
  const prefix = freshPrefix();
  const hosts = await Promise.all(['a', 'b', 'c'].map((id) => startHostProcess(t, redis, prefix, id, limitedPlugin(file))));

  const statuses = await Promise.all(Array.from({ length: RUNS }, async (_, i) => (await post(`${hosts[i % 3]!.url}/jobs/limited/run`)).status));
  t.ok(
    statuses.every((s) => s === 202),
    'every trigger is accepted (runs over the limit wait, they are not refused)',
  );
  await until(
    async () => {
      const job = (await (await fetch(`${hosts[1]!.url}/jobs/limited`)).json()) as { rateLimit: { max: number; perMs: number; waiting: number } | null };
      return job.rateLimit?.max === MAX && job.rateLimit.perMs === PER_MS && job.rateLimit.waiting > 0;
    },
    10_000,
    'GET /jobs/limited to show the limit and runs waiting on it',
  );

  await until(() => readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).length >= RUNS, 60_000, `all ${RUNS} runs to start`);
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  await until(
    async () => {
      const stats = (await (await fetch(`${hosts[0]!.url}/stats`)).json()) as { totals: { succeeded: number } };
      return stats.totals.succeeded >= RUNS;
    },
    20_000,
    'every run to succeed',
  );
  // When BullMQ started each run (its processedOn, the run's first attempt): a handler's own clock
  // read comes after a worker thread's hand-over, late by a varying amount on a loaded machine.
  const page = (await (await fetch(`${hosts[2]!.url}/runs?job=limited&limit=100`)).json()) as { items: Array<{ attempts: Array<{ startedAt: string }> }> };
  t.equal(page.items.length, RUNS);
  const starts = page.items.map((r) => Date.parse(r.attempts[0]!.startedAt));
  const counts = windows(starts, PER_MS, 300);
  t.ok(
    counts.every((n) => n <= MAX),
    `at most ${MAX} starts in each window of ${PER_MS} ms, over all hosts: ${JSON.stringify(counts)}`,
  );
  const span = Math.max(...starts) - Math.min(...starts);
  t.ok(span >= (RUNS / MAX - 1) * PER_MS - 300, `${RUNS} starts at ${MAX} per ${PER_MS} ms took ${span} ms`);
  t.ok(new Set(lines.map((l) => l.split(' ')[1])).size >= 2, 'runs started on more than one host');
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, RUNS, 'each run started once');

  for (const h of hosts) h.child.kill('SIGTERM');
  const codes = await Promise.all(hosts.map((h) => h.exited));
  t.same(codes, [0, 0, 0], 'every host stopped cleanly');
});
