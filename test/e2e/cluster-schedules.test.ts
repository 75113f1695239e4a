import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
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

interface HostProcess extends Running {
  id: string;
  url: string;
  /** The host's clock minus the test's, from the time field of its start-up log line (ms). */
  skewMs: number;
}

/** Debian's libfaketime: /usr/lib/<arch>/faketime/libfaketime.so.1, whatever the arch. */
function libfaketime(): string | undefined {
  return readdirSync('/usr/lib')
    .map((arch) => path.join('/usr/lib', arch, 'faketime', 'libfaketime.so.1'))
    .find((p) => existsSync(p));
}

async function startHostProcess(t: Tap, redis: TestRedis, prefix: string, id: string, plugin: string, env: NodeJS.ProcessEnv = {}): Promise<HostProcess> {
  // keepRuns 1: BullMQ removes each finished run at once, so a run id alone could not keep a fire from running twice.
  const config = {
    server: { port: 0 },
    store: { keepRuns: 1 },
    backend: { kind: 'redis', url: redis.url, prefix, lockDuration: 1000, stalledInterval: 500 },
    cluster: { id },
  };
  const dir = makeProject(t, config, { examples: false });
  writeFileSync(path.join(dir, 'plugins', 'tick.ts'), plugin);
  const app = runCli(t, dir, ['start'], { LOG_LEVEL: 'info', HOST_ID: id, ...env });
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), `${id} started`, { ms: 60_000 });
  return Object.assign(app, { id, url: line['url'] as string, skewMs: (line['time'] as number) - Date.now() });
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

t.test('a * * * * * * job on three hosts, one 0.7 s ahead: one run per fire for 20 s; kill -9 of the fastest host leaves no gap', async (t) => {
  const faketime = libfaketime();
  if (!faketime) throw new Error('libfaketime is missing: install Debian\'s "faketime" package (.ci/deps does)');
  const redis = await startRedis(t);
  const file = path.join(tempDir(t), 'ticks.log');
  writeFileSync(file, '');
  const prefix = freshPrefix();
  const [a, b, c] = await Promise.all([
    startHostProcess(t, redis, prefix, 'a', tickPlugin(file)),
    startHostProcess(t, redis, prefix, 'b', tickPlugin(file)),
    startHostProcess(t, redis, prefix, 'c', tickPlugin(file), { LD_PRELOAD: faketime, FAKETIME: '+0.7' }),
  ]);
  t.ok(c!.skewMs > 500 && c!.skewMs < 1500, `c's clock is ahead: ${c!.skewMs} ms (a: ${a!.skewMs} ms, b: ${b!.skewMs} ms)`);
  t.ok(Math.abs(a!.skewMs) < 400 && Math.abs(b!.skewMs) < 400, 'a and b keep the true time');

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
});
