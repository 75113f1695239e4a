import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { freshPrefix } from '../cluster.js';
import { type Tap, tempDir, until } from '../helpers.js';
import { startRedis, type TestRedis } from '../redis.js';
import { makeProject, type Running, runCli } from './project.js';

/**
 * Schedules in cluster mode, with `jobhost start` processes: every host fires the jobs it has
 * loaded, one of them with its clock 0.7 s ahead (libfaketime), and each fire runs once.
 */

/** A `* * * * * *` job that appends `<runId> <host> <attempt>` to a file for every attempt. */
function tickPlugin(file: string): string {
  return `import { appendFileSync } from 'node:fs';
export default {
  name: 'tick',
  schedule: '* * * * * *',
  handler(ctx) {
    appendFileSync(${JSON.stringify(file)}, ctx.runId + ' ' + process.env.HOST_ID + ' ' + ctx.attempt + '\\n');
  },
};
`;
}

/** A job only some hosts load: it runs where it is loaded, and is triggered there. */
const WORK_PLUGIN = `export default { name: 'work', concurrency: 20, handler: (ctx) => ({ on: process.env.HOST_ID }) };
`;

interface HostProcess extends Running {
  id: string;
  url: string;
  dir: string;
  /** The host's clock minus the test's, from the time field of its start-up log line (ms). */
  skewMs: number;
}

/** Debian's libfaketime: /usr/lib/<arch>/faketime/libfaketime.so.1, whatever the arch. */
function libfaketime(): string | undefined {
  return readdirSync('/usr/lib')
    .map((arch) => path.join('/usr/lib', arch, 'faketime', 'libfaketime.so.1'))
    .find((p) => existsSync(p));
}

async function startHostProcess(
  t: Tap,
  redis: TestRedis,
  prefix: string,
  id: string,
  plugin: string,
  env: NodeJS.ProcessEnv = {},
  more: Record<string, string> = {},
): Promise<HostProcess> {
  // keepRuns 1: BullMQ removes each finished run at once, so a run id alone could not keep a fire from running twice.
  const config = {
    server: { port: 0 },
    store: { keepRuns: 1 },
    backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 1000, stalledInterval: 500 },
    cluster: { id },
  };
  const dir = makeProject(t, config, { examples: false });
  writeFileSync(path.join(dir, 'plugins', 'tick.ts'), plugin);
  for (const [name, text] of Object.entries(more)) writeFileSync(path.join(dir, 'plugins', name), text);
  const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'info', HOST_ID: id, ...env });
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), `${id} started`, { ms: 60_000 });
  return Object.assign(app, { id, dir, url: line['url'] as string, skewMs: (line['time'] as number) - app.arrivedAt(line) });
}

interface Fire {
  runId: string;
  at: number;
  host: string;
  attempt: number;
}

/** Every attempt the handlers appended, with the fire time read from the run id. */
function fires(file: string): Fire[] {
  const text = readFileSync(file, 'utf8').trim();
  if (!text) return [];
  return text.split('\n').map((l) => {
    const [runId, host, attempt] = l.split(' ') as [string, string, string];
    return { runId, at: Number.parseInt(runId.slice(0, 9), 36), host, attempt: Number(attempt) };
  });
}

/** Fire times in [from, to) and how often each started a first attempt. */
function firstAttempts(all: Fire[], from: number, to: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const f of all) if (f.attempt === 1 && f.at >= from && f.at < to) out.set(f.at, (out.get(f.at) ?? 0) + 1);
  return out;
}

type Message = { type: string; seq: number; data: { job: string | null; runId?: string; host?: string; file?: string } };

interface Client {
  messages: Message[];
  close(): void;
}

async function connect(url: string, query: string): Promise<Client> {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/events${query}`);
  const messages: Message[] = [];
  socket.on('message', (raw) => {
    const m = JSON.parse(String(raw)) as Message;
    if (m.type !== 'hello') messages.push(m);
  });
  await once(socket, 'open');
  return { messages, close: () => socket.terminate() };
}

/**
 * A WebSocket client on a sees every lifecycle event of 200 runs that b and c trigger and run
 * (a does not load their job), in order per run, with `data.host`; a's own `seq` numbers them, and
 * `since` replays them; a host-local event of b (plugin.error) reaches a too.
 */
async function eventsFromOtherHosts(t: Test, a: HostProcess, b: HostProcess, c: HostProcess): Promise<void> {
  const client = await connect(a.url, '?job=work&type=run.*');
  const local = await connect(a.url, '?type=plugin.error');
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: 10 }, async (_, w) => {
      for (let i = 0; i < 20; i++) {
        const on = (w + i) % 2 === 0 ? b : c;
        const res = await fetch(`${on.url}/jobs/work/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        ids.push(((await res.json()) as { runId: string }).runId);
      }
    }),
  );
  t.equal(new Set(ids).size, 200, '200 runs triggered on b and c');
  const ended = (): number => client.messages.filter((m) => m.type === 'run.succeeded').length;
  await until(() => ended() >= 200, 30_000, 'a to see 200 runs end');
  const byRun = new Map<string, Message[]>();
  for (const m of client.messages) byRun.set(m.data.runId!, [...(byRun.get(m.data.runId!) ?? []), m]);
  t.same(new Set(byRun.keys()), new Set(ids), 'a saw events of every one of the 200 runs, and of no other');
  const lifecycles = [...byRun.values()].map((list) => list.map((m) => m.type).join(' '));
  t.same(
    lifecycles.filter((l) => l !== 'run.queued run.started run.succeeded'),
    [],
    'each run: queued, started, succeeded, in order',
  );
  t.ok(
    client.messages.every((m) => m.data.host === 'b' || m.data.host === 'c'),
    'every event carries data.host (b or c)',
  );
  const hosts = new Set(client.messages.filter((m) => m.type === 'run.started').map((m) => m.data.host));
  t.same([...hosts].sort(), ['b', 'c'], 'runs ran on both b and c');
  const seqs = client.messages.map((m) => m.seq);
  t.ok(
    seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
    "a's own seq numbers them, growing",
  );
  const half = client.messages[299]!.seq;
  const replay = await connect(a.url, `?job=work&type=run.*&since=${half}`);
  await until(() => replay.messages.length >= 300, 10_000, 'the replay');
  t.same(
    replay.messages.slice(0, 300).map((m) => m.seq),
    seqs.slice(300),
    'since= replays what came after, by a’s seq',
  );
  writeFileSync(path.join(b.dir, 'plugins', 'broken.js'), 'export default {');
  await until(() => local.messages.length > 0, 10_000, "b's plugin.error on a");
  t.match(local.messages[0], { type: 'plugin.error', data: { host: 'b' } }, "b's plugin.error reaches a's client, with data.host");
  for (const c of [client, local, replay]) c.close();
}

t.test('a * * * * * * job on three hosts, one 0.7 s ahead: one run per fire for 20 s; kill -9 of the fastest host leaves no gap', async (t) => {
  const faketime = libfaketime();
  if (!faketime) throw new Error('libfaketime is missing: install Debian\'s "faketime" package (.ci/deps does)');
  const redis = await startRedis(t);
  const file = path.join(tempDir(t), 'ticks.log');
  writeFileSync(file, '');
  const prefix = freshPrefix();
  const [a, b, c] = await Promise.all([
    startHostProcess(t, redis, prefix, 'a', tickPlugin(file)),
    startHostProcess(t, redis, prefix, 'b', tickPlugin(file), {}, { 'work.js': WORK_PLUGIN }),
    startHostProcess(t, redis, prefix, 'c', tickPlugin(file), { LD_PRELOAD: faketime, FAKETIME: '+0.7' }, { 'work.js': WORK_PLUGIN }),
  ]);
  // The skew is read from a log line's time on arrival (as its chunk is read), so the line's way here
  // (slower on a loaded machine) shortens it.
  t.ok(c!.skewMs > 350 && c!.skewMs < 1500, `c's clock is ahead: ${c!.skewMs} ms (a: ${a!.skewMs} ms, b: ${b!.skewMs} ms)`);
  t.ok(Math.abs(a!.skewMs) < 350 && Math.abs(b!.skewMs) < 350, 'a and b keep the true time');

  // 20 s of fires, counted from the next whole second once all three hosts fire.
  const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  const to = from + 20_000;
  await until(() => fires(file).some((f) => f.at >= to + 1000), 40_000, 'fires past the 20 s window');
  const window = firstAttempts(fires(file), from, to);
  const total = [...window.values()].reduce((s, n) => s + n, 0);
  t.ok(total >= 19 && total <= 21, `20 ± 1 runs in 20 s: ${total}`);
  t.same(
    [...window].filter(([, n]) => n > 1),
    [],
    'no fire time ran twice',
  );
  t.ok(
    fires(file).every((f) => f.runId.slice(9, 13) === '0000'),
    'each run id is derived from its fire time',
  );
  const byHost = new Map<string, number>();
  for (const f of fires(file)) if (f.at >= from && f.at < to) byHost.set(f.host, (byHost.get(f.host) ?? 0) + 1);
  t.comment(`runs by host: ${JSON.stringify([...byHost])}`);

  await eventsFromOtherHosts(t, a!, b!, c!);

  // `jobhost list` shows the hosts when there is more than one.
  const list = runCli(t, a!.dir, ['list', '--url', a!.url]);
  t.equal(await list.exited, 0, 'jobhost list exits 0');
  const listed = list.lines.map((l) => l.msg).join('\n');
  t.match(listed, /HOST\s+URL\s+STARTED\s+LAST SEEN\s+RUNNING\s+JOBS/, 'jobhost list shows a hosts table');
  for (const id of ['a *', 'b', 'c']) t.match(listed, new RegExp(`^${id.replace('*', '\\*')}\\s+http://`, 'm'), `with host ${id}`);
  const hostIds = async (): Promise<string[]> =>
    ((await (await fetch(`${a!.url}/cluster`)).json()) as { hosts: Array<{ id: string }> }).hosts.map((h) => h.id).sort();
  t.same(await hostIds(), ['a', 'b', 'c'], 'GET /cluster on a lists the three hosts');

  // c fires first (its clock is ahead): killing it shows the others go on without a leader to replace.
  c!.child.kill('SIGKILL');
  await c!.exited;
  const killedAt = Date.now();
  await until(() => fires(file).some((f) => f.at >= killedAt + 6000), 20_000, 'fires 6 s after the kill');
  const after = fires(file);
  const around = firstAttempts(after, killedAt - 2000, killedAt + 6000);
  const times = [...around.keys()].sort((x, y) => x - y);
  const gaps = times.slice(1).map((at, i) => at - times[i]!);
  t.ok(times.length >= 7, `fires went on: ${times.length} in the 8 s around the kill`);
  t.ok(
    gaps.every((g) => g <= 2000),
    `no gap longer than 2 s: ${JSON.stringify(gaps)}`,
  );
  t.same(
    [...around].filter(([, n]) => n > 1),
    [],
    'no fire time ran twice around the kill',
  );
  t.ok(
    after.filter((f) => f.at > killedAt + 1000).every((f) => f.host !== 'c'),
    'c ran nothing after it died',
  );
  await until(async () => !(await hostIds()).includes('c'), 15_000, 'c to drop out of GET /cluster');
  const droppedAfter = Date.now() - killedAt;
  // About 6 s (its heartbeat lives 5 s, checked every second); the bound leaves a loaded machine its
  // stalls, and is still under the 21 s the waits above would allow.
  t.ok(droppedAfter <= 12_000, `c dropped out of GET /cluster ${droppedAfter} ms after the kill (its heartbeat lives 5 s; checked every second)`);
});
