import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { tempDir, until } from '../helpers.js';
import { closedPort, startLiveHost } from '../live-host.js';
import { BIN, childEnv, killAtTeardown, makeProject, ROOT } from './project.js';

/**
 * The client commands as a user runs them: `node core/bin.mjs <command>` in a child process,
 * against a real host and server on 127.0.0.1 (in this process, so the test can hold runs,
 * take the server down and bring it back).
 */

const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
const TOKEN = 'e2e-cli-token';

interface Child {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Starts the CLI; the child is killed when the test ends. The caller's env never leaks a URL, token or color setting in. */
function start(t: Test, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Child {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? os.tmpdir(),
    env: childEnv({ JOBHOST_URL: undefined, JOBHOST_TOKEN: undefined, NO_COLOR: undefined, FORCE_COLOR: undefined, ...options.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  killAtTeardown(t, child, exited);
  return { child, stdout: () => out, stderr: () => err, exited };
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end (bounded: 60 s, a guard against a hang on a loaded machine, not a speed check). */
async function cli(t: Test, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Result> {
  const c = start(t, args, options);
  const timer = setTimeout(() => c.child.kill('SIGKILL'), 60_000);
  const code = await c.exited;
  clearTimeout(timer);
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

/** Waits (bounded) until a child's output matches. */
async function waitFor(c: Child, stream: 'stdout' | 'stderr', pattern: RegExp, what: string): Promise<void> {
  await until(
    () => {
      if (pattern.test(c[stream]())) return true;
      if (c.child.exitCode !== null) throw new Error(`exited (${c.child.exitCode}) before ${what}:\n${c.stdout()}\n${c.stderr()}`);
      return false;
    },
    30_000,
    what,
  );
}

t.test('--help for every command, --version, usage errors exit 2', async (t) => {
  const commands = ['start', 'validate', 'list', 'run', 'tail', 'init', 'new', 'store', 'notify'];
  const [root, ver, unknown, ...helps] = await Promise.all([
    cli(t, ['--help']),
    cli(t, ['--version']),
    cli(t, ['nope']),
    ...commands.map((c) => cli(t, [c, '--help'])),
  ]);
  t.equal(root!.code, 0);
  for (const c of commands) t.match(root!.stdout, new RegExp(`^\\s+${c}\\b`, 'm'), `root help lists ${c}`);
  t.match(root!.stdout, /--url <url>[\s\S]*env: JOBHOST_URL\)/);
  t.match(root!.stdout, /--token <token>[\s\S]*env:\s+JOBHOST_TOKEN\)/, 'help wraps at the widest command');
  t.equal(ver!.code, 0);
  t.equal(ver!.stdout.trim(), version);
  t.equal(unknown!.code, 2);
  t.match(unknown!.stderr, /unknown command 'nope'/);
  const expected: Record<string, RegExp[]> = {
    start: [/--config <path>/],
    validate: [/--config <path>/],
    list: [/--json/, /Global Options:[\s\S]*--url/],
    run: [/Usage: jobhost run \[options\] <job>/, /--params <json>/, /--delay <duration>/, /--key <key>/, /--wait/, /--timeout <duration>/],
    tail: [/--job <name>/, /--type <type>/, /--since <seq>/, /--json/],
    init: [/Usage: jobhost init/, /npx jobhost init && npx jobhost start/],
    new: [/Usage: jobhost new \[options\] <name>/, /--dir <dir>/, /--schedule <cron>/, /--force/],
    store: [/damage\b/, /ack-damage \[options\] \[ids\.\.\.\]/],
    notify: [/test \[options\] <destination>/, /destinations \[options\]/],
  };
  commands.forEach((c, i) => {
    const help = helps[i]!;
    t.equal(help.code, 0, `${c} --help exits 0`);
    for (const re of expected[c]!) t.match(help.stdout, re, `${c} --help: ${re}`);
  });
});

t.test('list: a table of jobs with what is paused, --json, colors when forced', async (t) => {
  const live = await startLiveHost(t);
  await live.host.wait((await live.host.trigger('work', { params: { steps: 1 } })).runId);
  // work paused by itself and by its queue; quick by its queue only.
  await live.host.pauses.job('work', true);
  await live.host.pauses.queue('default', true);
  const url = ['--url', live.url];
  // (NO_COLOR and the rest of the color rules are unit-tested in cli-format.test.ts)
  const [table, json, forced] = await Promise.all([
    cli(t, ['list', ...url]),
    cli(t, ['list', '--json', ...url]),
    cli(t, ['list', ...url], { env: { FORCE_COLOR: '1' } }),
  ]);
  t.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  t.match(lines[0], /^NAME\s+SCHEDULE\s+ENABLED\s+PAUSED\s+NEXT RUN\s+LAST RUN\s+OK\s+FAILED\s+CANCELED\s+RUNNING\s+QUEUED$/);
  t.match(lines[1], /^quick\s+0 3 29 2 \*\s+yes\s+queue default\s+(in \d+[dhms]\S*|now)\s+-\s+0\s+0\s+0\s+0\s+0$/);
  t.match(lines[2], /^work\s+-\s+yes\s+yes, queue default\s+-\s+succeeded (now|\d+\S* ago)\s+1\s+0\s+0\s+0\s+0$/);
  t.notMatch(table.stdout, /\x1b\[/, 'no colors in a pipe');
  t.equal(json.code, 0);
  const jobs = JSON.parse(json.stdout) as Array<{ name: string; counts: { succeeded: number }; paramsSchema: unknown }>;
  t.same(jobs.map((j) => j.name).sort(), ['quick', 'work']);
  t.equal(jobs.find((j) => j.name === 'work')!.counts.succeeded, 1);
  t.ok(jobs.find((j) => j.name === 'work')!.paramsSchema, 'the raw fields are all there');
  t.match(forced.stdout, /\x1b\[1mNAME/, 'FORCE_COLOR colors');
});

t.test('run prints the run id; --wait shows progress, the result and the exit code', async (t) => {
  const live = await startLiveHost(t);
  const url = ['--url', live.url];
  const plain = await cli(t, ['run', 'work', '--params', '{"steps":1}', '--key', 'k1', '--priority', '3', '--delay', '1h', ...url]);
  t.equal(plain.code, 0, plain.stderr);
  t.match(plain.stdout, /^[0-9a-z]{16}\n$/);
  const runId = plain.stdout.trim();
  const queued = (await live.host.run(runId))!;
  t.match(queued, { job: 'work', key: 'k1', priority: 3, source: 'http', status: 'queued', params: { steps: 1 } });
  t.ok(Date.parse(queued.runAt) - Date.parse(queued.createdAt) >= 3_600_000, '--delay 1h');
  await live.host.cancel(runId);

  const waiting = start(t, ['run', 'work', '--wait', '--params', '{"hold":true}', ...url]);
  await waitFor(waiting, 'stderr', /progress 50% step 1 of 2/, 'the progress line');
  t.match(waiting.stdout(), /^[0-9a-z]{16}\n$/, 'the run id first');
  live.release();
  t.equal(await waiting.exited, 0, waiting.stderr());
  const [id, ...result] = waiting.stdout().trimEnd().split('\n');
  t.same(JSON.parse(result.join('\n')), { steps: 2 }, 'the result on stdout');
  t.match(await live.host.run(id!), { status: 'succeeded' });
  t.match(waiting.stderr(), /^started\nprogress 50% step 1 of 2\n(progress 100% step 2 of 2\n)?succeeded in \d+\S*\n$/);

  const [failed, json] = await Promise.all([
    cli(t, ['run', 'work', '--wait', '--params', '{"fail":"disk on fire"}', ...url]),
    cli(t, ['run', 'work', '--wait', '--json', '--params', '{"steps":1}', ...url]),
  ]);
  t.equal(failed.code, 1);
  t.match(failed.stderr, /failed in \d+\S*: WORK_FAILED: disk on fire\n$/);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { status: 'succeeded', result: { steps: 1 }, attempts: [{ n: 1 }] });
});

t.test('run --wait prints the lines the handler logs, as it runs; tail --logs shows them, tail alone does not', async (t) => {
  const live = await startLiveHost(t);
  const url = ['--url', live.url];
  const plainTail = start(t, ['tail', '--job', 'work', ...url]);
  const logTail = start(t, ['tail', '--job', 'work', '--logs', ...url]);
  await Promise.all([waitFor(plainTail, 'stderr', /following/, 'tail'), waitFor(logTail, 'stderr', /following/, 'tail --logs')]);

  const waiting = start(t, ['run', 'work', '--wait', '--params', '{"hold":true,"log":["reading the input","42 rows"]}', ...url]);
  await waitFor(waiting, 'stderr', /info {3}42 rows \{"step":1\}/, 'the logged lines, while the run holds');
  t.match(
    waiting.stderr(),
    /^started\n(progress 50% step 1 of 2\n)?info {3}reading the input \{"step":1\}\ninfo {3}42 rows \{"step":1\}\n/,
    'in order, on stderr',
  );
  const runId = waiting.stdout().trim();
  t.equal((await live.host.run(runId))?.status, 'running', 'printed while the run was running');
  await waitFor(logTail, 'stdout', /42 rows/, 'tail --logs');
  live.release();
  t.equal(await waiting.exited, 0, waiting.stderr());
  t.equal(waiting.stderr().match(/reading the input/g)?.length, 1, 'each line once');
  t.match(logTail.stdout(), new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  run\\.log\\s+work\\s+${runId}  info   reading the input \\{"step":1\\}$`, 'm'));
  await waitFor(plainTail, 'stdout', new RegExp(`run\\.succeeded\\s+work\\s+${runId}`), 'the end in tail');
  await waitFor(logTail, 'stdout', new RegExp(`run\\.succeeded\\s+work\\s+${runId}`), 'the end in tail --logs');
  t.notMatch(plainTail.stdout(), /run\.log|reading the input/, 'tail without --logs leaves them out');
});

t.test('errors: the API code and message, exit 1; bad arguments exit 2; no host', async (t) => {
  const live = await startLiveHost(t);
  const url = ['--url', live.url];
  const port = await closedPort();
  const [params, unknown, json, refused, gaveUp] = await Promise.all([
    cli(t, ['run', 'work', '--params', '{"steps":0}', ...url]),
    cli(t, ['run', 'nope', '--wait', ...url]),
    cli(t, ['run', 'work', '--params', '{steps:1}', ...url]),
    cli(t, ['list', '--url', `http://127.0.0.1:${port}`]),
    cli(t, ['run', 'work', '--wait', '--timeout', '300ms', '--params', '{"hold":true}', ...url]),
  ]);
  t.equal(params.code, 1);
  t.match(params.stderr, /^INVALID_PARAMS: params\.steps: Too small/);
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr, 'JOB_NOT_FOUND: no job named "nope"\n');
  t.equal(json.code, 2);
  t.match(json.stderr, /option '--params <json>' argument '\{steps:1\}' is invalid\. not valid JSON/);
  t.equal(refused.code, 1);
  t.match(refused.stderr, new RegExp(`^UNREACHABLE: no jobhost at http://127\\.0\\.0\\.1:${port} \\(connection refused\\)`));
  t.equal(gaveUp.code, 1);
  t.match(gaveUp.stderr, /WAIT_TIMEOUT: stopped waiting for run \w+ after 300 ms; it goes on\n$/);
  live.release();
});

t.test('tail: one line per event, filters, --json, and it resumes after the host comes back', async (t) => {
  const live = await startLiveHost(t);
  const url = ['--url', live.url];
  const lines = start(t, ['tail', '--job', 'work', ...url]);
  const json = start(t, ['tail', '--json', '--type', 'run.succeeded', '--type', 'run.failed', ...url]);
  await Promise.all([waitFor(lines, 'stderr', /following/, 'tail'), waitFor(json, 'stderr', /following/, 'tail --json')]);

  const ok = await live.host.trigger('work', { params: { steps: 1 } });
  const bad = await live.host.trigger('work', { params: { fail: 'nope' } });
  const quick = await live.host.trigger('quick');
  await Promise.all([live.host.wait(ok.runId), live.host.wait(bad.runId), live.host.wait(quick.runId)]);
  await waitFor(lines, 'stdout', new RegExp(`run\\.failed\\s+work\\s+${bad.runId}\\s+WORK_FAILED: nope`), 'the failed line');
  await waitFor(lines, 'stdout', new RegExp(`run\\.succeeded\\s+work\\s+${ok.runId}`), 'the succeeded line');
  await waitFor(json, 'stdout', /^(.+\n){3}$/, 'three ends in --json');
  t.match(lines.stdout(), new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  run\\.queued\\s+work\\s+${ok.runId}  api, queue default$`, 'm'));
  t.match(lines.stdout(), new RegExp(`run\\.progress\\s+work\\s+${ok.runId}  100% step 1 of 1`));
  t.match(lines.stdout(), new RegExp(`run\\.succeeded\\s+work\\s+${ok.runId}  \\d+\\S*, result \\{"steps":1\\}`));
  t.notMatch(lines.stdout(), /quick/, '--job filters');
  t.notMatch(lines.stdout(), /\x1b\[/, 'no colors in a pipe');
  const events = json
    .stdout()
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { seq: number; type: string; data: { runId: string } });
  // The three runs run side by side: their ends may come in any order.
  const ends = (list: typeof events): string[] => list.map((e) => `${e.data.runId} ${e.type}`).sort();
  t.same(
    ends(events),
    [`${ok.runId} run.succeeded`, `${bad.runId} run.failed`, `${quick.runId} run.succeeded`].sort(),
    '--type filters; one JSON object per line',
  );

  // The server goes away and comes back: tail reconnects with since= and shows what happened meanwhile.
  await live.down();
  await waitFor(lines, 'stderr', /connection lost \(1001/, 'the drop notice');
  const meanwhile = await live.host.trigger('work', { params: { steps: 1 } });
  await live.host.wait(meanwhile.runId);
  await live.up();
  await waitFor(lines, 'stdout', new RegExp(`run\\.succeeded\\s+work\\s+${meanwhile.runId}`), 'the run from the downtime');
  await waitFor(json, 'stdout', new RegExp(meanwhile.runId), 'the run from the downtime, in --json');
  t.match(lines.stderr(), /reconnected; resuming after seq \d+/);

  // --since replays from the host's buffer first
  const first = Math.min(...events.map((e) => e.seq));
  const replay = start(t, ['tail', '--json', '--since', String(first - 1), '--type', 'run.succeeded', ...url]);
  await waitFor(replay, 'stdout', new RegExp(meanwhile.runId), 'the replay');
  const replayed = replay
    .stdout()
    .trimEnd()
    .split('\n')
    .map((l) => (JSON.parse(l) as { data: { runId: string } }).data.runId);
  t.same(replayed.sort(), [ok.runId, quick.runId, meanwhile.runId].sort());
});

t.test('a token: --token or JOBHOST_TOKEN, and 401 without', async (t) => {
  const live = await startLiveHost(t, { token: TOKEN });
  const url = ['--url', live.url];
  const [flag, env, none] = await Promise.all([
    cli(t, ['run', 'work', '--wait', '--params', '{"steps":1}', '--token', TOKEN, ...url]),
    cli(t, ['list', '--json'], { env: { JOBHOST_TOKEN: TOKEN, JOBHOST_URL: live.url } }),
    cli(t, ['list', ...url]),
  ]);
  t.equal(flag.code, 0, `--token, for HTTP and the WebSocket: ${flag.stderr}`);
  t.equal(env.code, 0, env.stderr);
  t.equal((JSON.parse(env.stdout) as unknown[]).length, 2);
  t.equal(none.code, 1);
  t.match(none.stderr, /^UNAUTHORIZED: this host needs a token/);
  // Set but empty is unset: the default URL, not a usage error about "".
  const empty = await cli(t, ['list'], { env: { JOBHOST_URL: '', JOBHOST_TOKEN: '' } });
  t.not(empty.code, 2, empty.stderr);
  t.notMatch(empty.stderr, /not a URL/);
  t.notMatch(flag.stdout + flag.stderr + env.stdout + env.stderr, TOKEN, 'the token is never printed');
});

t.test('new: a plugin file that validate accepts; bad names and existing files exit 2', async (t) => {
  const dir = makeProject(t, {}, { examples: false });
  const created = await Promise.all([cli(t, ['new', 'nightly-sync', '--schedule', '0 2 * * *'], { cwd: dir }), cli(t, ['new', 'on-demand'], { cwd: dir })]);
  for (const c of created) t.equal(c.code, 0, c.stderr);
  t.equal(created[0]!.stdout, 'created plugins/nightly-sync.ts\n');
  const [valid, bad, exists] = await Promise.all([
    cli(t, ['validate'], { cwd: dir }),
    cli(t, ['new', 'Bad_Name'], { cwd: dir }),
    cli(t, ['new', 'on-demand'], { cwd: dir }),
  ]);
  t.equal(valid.code, 0, valid.stdout + valid.stderr);
  t.match(valid.stdout, /ok: config and 2 plugins valid \(nightly-sync, on-demand\)/);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^error: "Bad_Name" is not a job name: use kebab-case/);
  t.equal(exists.code, 2);
  t.match(exists.stderr, /^error: plugins\/on-demand\.ts already exists \(use --force to overwrite it\)/);
});

t.test('init: a project that validate accepts; a broken package.json exits 2 and nothing is written', async (t) => {
  const dir = tempDir(t, 'jobhost-cli-init-');
  const init = await cli(t, ['init'], { cwd: dir });
  t.equal(init.code, 0, init.stderr);
  t.equal(
    init.stdout,
    'created config/jobhost.json\ncreated plugins/hello.ts\ncreated package.json\nadded the "start" script to package.json: jobhost start\n',
  );
  t.match(init.stderr, /^next: `npx jobhost start` runs the host/);
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const valid = await cli(t, ['validate'], { cwd: dir });
  t.equal(valid.code, 0, valid.stdout + valid.stderr);
  t.match(valid.stdout, 'ok: config and 1 plugin valid (hello)');

  const broken = tempDir(t, 'jobhost-cli-init-');
  writeFileSync(path.join(broken, 'package.json'), '{ "name": ');
  const refused = await cli(t, ['init'], { cwd: broken });
  t.equal(refused.code, 2);
  t.match(refused.stderr, /^error: package\.json is not valid JSON/);
  t.same(readdirSync(broken), ['package.json'], 'nothing written');
});

t.test('run --wait rides out a server restart', async (t) => {
  const live = await startLiveHost(t);
  const waiting = start(t, ['run', 'work', '--wait', '--params', '{"hold":true}', '--url', live.url]);
  await waitFor(waiting, 'stderr', /progress 50%/, 'progress');
  await live.down();
  await waitFor(waiting, 'stderr', /lost the event stream \(1001/, 'the drop notice');
  await live.up();
  await waitFor(waiting, 'stderr', /event stream back/, 'the reconnection');
  live.release();
  t.equal(await waiting.exited, 0, waiting.stderr());
  t.match(waiting.stderr(), /succeeded in /);
});

t.test('Ctrl-C stops waiting, not the run', async (t) => {
  const live = await startLiveHost(t);
  const waiting = start(t, ['run', 'work', '--wait', '--params', '{"hold":true}', '--url', live.url]);
  await waitFor(waiting, 'stderr', /progress 50%/, 'progress');
  const runId = waiting.stdout().trim();
  waiting.child.kill('SIGINT');
  t.equal(await waiting.exited, 130);
  t.match(waiting.stderr(), new RegExp(`stopped waiting; run ${runId} goes on \\(jobhost tail --job work\\)\\n$`));
  t.match(await live.host.run(runId), { status: 'running' });
  live.release();
});

t.test('pause and resume: a job, or a queue with --queue; unknown names exit 1 with the code; neither or both exit 2', async (t) => {
  const live = await startLiveHost(t);
  const url = ['--url', live.url];
  const paused = await cli(t, ['pause', 'work', ...url]);
  t.equal(paused.code, 0, paused.stderr);
  t.match(paused.stdout, /^job work paused/);
  t.same(live.host.pauses.list(), { jobs: ['work'], queues: [] });
  const queue = await cli(t, ['pause', '--queue', 'default', '--json', ...url]);
  t.equal(queue.code, 0, queue.stderr);
  t.match(JSON.parse(queue.stdout), { queue: 'default', paused: true });
  const held = await cli(t, ['resume', 'work', ...url]);
  t.match(held.stdout, /^job work resumed \(still held: its queue is paused\)/);
  t.equal((await cli(t, ['resume', '--queue', 'default', ...url])).code, 0);
  t.same(live.host.pauses.list(), { jobs: [], queues: [] });
  const help = await cli(t, ['pause', '--help']);
  t.match(help.stdout, /Usage: jobhost pause \[options\] \[job\][\s\S]*--queue <name>/);
  const [unknownJob, unknownQueue, neither, both] = await Promise.all([
    cli(t, ['pause', 'nope', ...url]),
    cli(t, ['resume', '--queue', 'nope', ...url]),
    cli(t, ['pause', ...url]),
    cli(t, ['pause', 'work', '--queue', 'default', ...url]),
  ]);
  t.equal(unknownJob.code, 1);
  t.match(unknownJob.stderr, /JOB_NOT_FOUND/);
  t.equal(unknownQueue.code, 1);
  t.match(unknownQueue.stderr, /QUEUE_NOT_FOUND/);
  t.equal(neither.code, 2);
  t.equal(both.code, 2);
});
