import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freshPrefix } from '../cluster.js';
import { type Tap, tempDir, until } from '../helpers.js';
import { startRedis, type TestRedis } from '../redis.js';
import { makeProject, type Running, runCli } from './project.js';

/**
 * SPEC §13 in cluster mode, as users run it: three `jobhost start` processes on one private
 * redis-server (started once, for both subtests)
 * - share a job's `rateLimit` (BullMQ's limiter on the job's queue), so the starts of all hosts
 *   together never pass `max` per window;
 * - share a pause: asked over HTTP on one host, it holds the job's runs on every host (BullMQ's
 *   global pause of the job's queue, and a record in Redis that each host lists), a host started
 *   while it holds finds it, and a resume on another host starts the runs that waited.
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

/** Appends the host's id for every attempt it starts: it must start none while paused. */
function heldPlugin(file: string): string {
  return `import { appendFileSync } from 'node:fs';
export default {
  name: 'held',
  concurrency: 10,
  handler() {
    appendFileSync(${JSON.stringify(file)}, process.env.HOST_ID + '\\n');
    return null;
  },
};
`;
}

/** Never paused: its runs show that the hosts take runs while `held` waits. */
const WITNESS_PLUGIN = `export default { name: 'witness', concurrency: 10, handler: () => null };
`;

interface HostProcess extends Running {
  url: string;
}

/** A `jobhost start` process with `plugins` (file name → source) in its plugins directory. */
async function startHostProcess(t: Tap, redis: TestRedis, prefix: string, id: string, plugins: Record<string, string>): Promise<HostProcess> {
  const dir = makeProject(
    t,
    { server: { port: 0 }, backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000 }, cluster: { id } },
    { examples: false },
  );
  for (const [name, source] of Object.entries(plugins)) writeFileSync(path.join(dir, 'plugins', name), source);
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

const getJson = async <T>(url: string): Promise<T> => (await (await fetch(url)).json()) as T;

interface RunView {
  status: string;
  host?: string | null;
}

async function trigger(host: HostProcess, job: string): Promise<{ status: number; runId: string }> {
  const res = await post(`${host.url}/jobs/${job}/run`);
  return { status: res.status, runId: ((await res.json()) as { runId: string }).runId };
}

/** The run once it has ended, read from `host` (bounded). */
async function ended(host: HostProcess, id: string, ms = 20_000): Promise<RunView> {
  let run: RunView | undefined;
  await until(
    async () => {
      run = await getJson<RunView>(`${host.url}/runs/${id}`);
      return ['succeeded', 'failed', 'canceled'].includes(run.status);
    },
    ms,
    `run ${id} to end`,
  );
  return run!;
}

/**
 * Runs of `witness` triggered on every host, round after round, until every host has run one
 * (bounded): proof that each host takes runs meanwhile, so runs that wait do so because they are
 * held, not because nobody looked. Answers the hosts that ran one and every witness run's status.
 */
async function witnesses(hosts: HostProcess[]): Promise<{ ranOn: string[]; statuses: string[] }> {
  const ranOn = new Set<string>();
  const statuses: string[] = [];
  const deadline = Date.now() + 30_000;
  while (ranOn.size < hosts.length && Date.now() < deadline) {
    const ids = await Promise.all(hosts.map(async (h) => (await trigger(h, 'witness')).runId));
    for (const [i, id] of ids.entries()) {
      const run = await ended(hosts[i]!, id);
      statuses.push(run.status);
      if (run.host) ranOn.add(run.host);
    }
  }
  return { ranOn: [...ranOn].sort(), statuses };
}

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

t.test('three host processes on one private redis-server', async (t) => {
  const redis = await startRedis(t);
  const file = path.join(tempDir(t), 'starts.log');
  const heldFile = path.join(tempDir(t), 'held.log');
  writeFileSync(file, '');
  writeFileSync(heldFile, '');
  const prefix = freshPrefix();
  const plugins = { 'limited.ts': limitedPlugin(file), 'held.ts': heldPlugin(heldFile), 'witness.ts': WITNESS_PLUGIN };
  // The hosts, and the one a subtest starts again, belong to this test: it stops them after both subtests.
  const cluster = t;
  const hosts = await Promise.all(['a', 'b', 'c'].map((id) => startHostProcess(cluster, redis, prefix, id, plugins)));

  await t.test('a rateLimit holds across them (never more than max starts per window), and no run is refused', async (t) => {
    // Which host takes a window's runs is whichever wakes first: on a loaded machine one host can
    // win every window of a batch. The limit is checked in every batch; another batch (3 at most)
    // runs only while no batch has started runs on more than one host, the precondition of the test.
    const seenHosts = new Set<string>();
    for (let batch = 1; batch <= 3 && seenHosts.size < 2; batch++) {
      writeFileSync(file, '');
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
          return stats.totals.succeeded >= RUNS * batch;
        },
        20_000,
        'every run to succeed',
      );
      // When BullMQ started each run (its processedOn, the run's first attempt): a handler's own clock
      // read comes after a worker thread's hand-over, late by a varying amount on a loaded machine.
      // Newest first: this batch's runs are the RUNS newest (each batch is triggered after the last one ended).
      const page = (await (await fetch(`${hosts[2]!.url}/runs?job=limited&limit=100`)).json()) as { items: Array<{ attempts: Array<{ startedAt: string }> }> };
      t.equal(page.items.length, RUNS * batch);
      const starts = page.items.slice(0, RUNS).map((r) => Date.parse(r.attempts[0]!.startedAt));
      const counts = windows(starts, PER_MS, 300);
      t.ok(
        counts.every((n) => n <= MAX),
        `at most ${MAX} starts in each window of ${PER_MS} ms, over all hosts: ${JSON.stringify(counts)}`,
      );
      const span = Math.max(...starts) - Math.min(...starts);
      t.ok(span >= (RUNS / MAX - 1) * PER_MS - 300, `${RUNS} starts at ${MAX} per ${PER_MS} ms took ${span} ms`);
      t.equal(readFileSync(file, 'utf8').trim().split('\n').length, RUNS, 'each run started once');
      const batchHosts = new Set(lines.map((l) => l.split(' ')[1]!));
      if (batchHosts.size >= 2) for (const h of batchHosts) seenHosts.add(h);
      else t.comment(`batch ${batch}: every run started on host ${[...batchHosts].join()}`);
    }
    t.ok(seenHosts.size >= 2, 'runs of one batch started on more than one host');
  });

  await t.test('a pause asked on one host holds on every host, outlives a host restart, and a resume on another starts the runs', async (t) => {
    const heldStarts = (): number => readFileSync(heldFile, 'utf8').split('\n').filter(Boolean).length;
    const a = hosts[0]!;
    const c = hosts[2]!;
    const paused = await post(`${a.url}/jobs/held/pause`);
    t.equal(paused.status, 200, 'POST /jobs/held/pause on host a');
    t.equal(((await paused.json()) as { paused: boolean }).paused, true, 'host a answers the job paused');

    // Triggered at once on the other hosts, before they may have heard of the pause.
    const triggers = await Promise.all([hosts[1]!, c, hosts[1]!, c].map((h) => trigger(h, 'held')));
    t.same(
      triggers.map((r) => r.status),
      [202, 202, 202, 202],
      'triggers of the paused job on hosts b and c are accepted',
    );
    const held = triggers.map((r) => r.runId);

    const holdsEverywhere = async (what: string): Promise<void> => {
      await until(
        async () => (await Promise.all(hosts.map((h) => getJson<{ paused: boolean }>(`${h.url}/jobs/held`)))).every((j) => j.paused),
        10_000,
        `every host to show held paused (${what})`,
      ).catch(() => undefined); // the assertion below says which host does not
      const views = await Promise.all(hosts.map((h) => getJson<{ paused: boolean; pause: { job: boolean; queue: boolean } }>(`${h.url}/jobs/held`)));
      t.same(
        views.map((v) => [v.paused, v.pause]),
        hosts.map(() => [true, { job: true, queue: false }]),
        `GET /jobs/held on every host: paused by itself (${what})`,
      );
      const ready = await Promise.all(hosts.map((h) => getJson<{ paused: unknown }>(`${h.url}/ready`)));
      t.same(
        ready.map((r) => r.paused),
        hosts.map(() => ({ jobs: ['held'], queues: [] })),
        `GET /ready on every host lists the pause, read from Redis (${what})`,
      );
      // Every host takes runs of another job meanwhile, triggered after the held ones.
      const w = await witnesses(hosts);
      t.same(w.ranOn, ['a', 'b', 'c'], `runs of an unpaused job ran on every host meanwhile (${what})`);
      t.ok(
        w.statuses.every((s) => s === 'succeeded'),
        `those runs succeeded (${what})`,
      );
      const runs = await Promise.all(hosts.flatMap((h) => held.map((id) => getJson<RunView>(`${h.url}/runs/${id}`))));
      t.same(
        runs.map((r) => [r.status, r.host ?? null]),
        runs.map(() => ['queued', null]),
        `every held run is still queued, started by no host, as every host reads it (${what})`,
      );
      t.equal(heldStarts(), 0, `the held job's handler ran nowhere (${what})`);
    };
    await holdsEverywhere('after the pause');

    // A host stopped and started again while paused finds the pause in Redis and holds too.
    hosts[1]!.child.kill('SIGTERM');
    t.equal(await hosts[1]!.exited, 0, 'host b stopped cleanly while the job was paused');
    hosts[1] = await startHostProcess(cluster, redis, prefix, 'b', plugins);
    await holdsEverywhere('host b restarted');

    const resumed = await post(`${c.url}/jobs/held/resume`);
    t.equal(resumed.status, 200, 'POST /jobs/held/resume on host c');
    t.equal(((await resumed.json()) as { paused: boolean }).paused, false, 'host c answers the job resumed');
    const ends = await Promise.all(held.map((id) => ended(a, id)));
    t.same(
      ends.map((r) => r.status),
      held.map(() => 'succeeded'),
      'every held run starts and succeeds once resumed',
    );
    t.equal(heldStarts(), held.length, 'each held run started once');
    await until(
      async () => (await Promise.all(hosts.map((h) => getJson<{ paused: boolean }>(`${h.url}/jobs/held`)))).every((j) => !j.paused),
      10_000,
      'every host to show held resumed',
    ).catch(() => undefined); // the assertions below say which host does not
    const views = await Promise.all(hosts.map((h) => getJson<{ paused: boolean }>(`${h.url}/jobs/held`)));
    t.same(
      views.map((v) => v.paused),
      [false, false, false],
      'GET /jobs/held on every host: no longer paused',
    );
    const ready = await Promise.all(hosts.map((h) => getJson<{ paused: unknown }>(`${h.url}/ready`)));
    t.same(
      ready.map((r) => r.paused),
      hosts.map(() => ({ jobs: [], queues: [] })),
      'GET /ready on every host lists nothing paused after the resume',
    );
  });

  for (const h of hosts) h.child.kill('SIGTERM');
  const codes = await Promise.all(hosts.map((h) => h.exited));
  t.same(codes, [0, 0, 0], 'every host stopped cleanly');
});
