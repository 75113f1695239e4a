import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { silentLogger } from '../../core/contract/logger.js';
import { createHost } from '../../core/engine/host.js';
import { tempDir, until } from '../helpers.js';
import { makeProject, type Running, runCli } from './project.js';

const post = async (url: string, body: unknown = {}): Promise<{ status: number; json: Record<string, unknown> }> => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

const runOf = async (url: string, id: string): Promise<{ status: string; error: { code: string } | null; result: unknown }> =>
  (await (await fetch(`${url}/runs/${id}`)).json()) as never;

async function start(t: Parameters<typeof runCli>[0], dir: string): Promise<Running & { url: string }> {
  const app = runCli(t, dir, ['start']);
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'the started line', { ms: 90_000 });
  return Object.assign(app, { url: line['url'] as string });
}

const listeners = (): { exception: number; rejection: number } => ({
  exception: process.listenerCount('uncaughtException'),
  rejection: process.listenerCount('unhandledRejection'),
});

t.test('an embedded host installs no process-wide handlers, through start and stop', async (t) => {
  const before = { exceptions: process.listeners('uncaughtException'), rejections: process.listeners('unhandledRejection') };
  const host = createHost({
    config: { store: { dir: tempDir(t) } },
    logger: silentLogger(),
    plugins: [{ name: 'ok', isolation: 'inline', handler: () => 'fine' }],
  });
  await host.start();
  t.same(process.listeners('uncaughtException'), before.exceptions, 'started: uncaughtException listeners as they were');
  t.same(process.listeners('unhandledRejection'), before.rejections, 'started: unhandledRejection listeners as they were');
  t.equal((await host.wait((await host.trigger('ok')).runId)).status, 'succeeded');
  await host.stop({ graceMs: 0 });
  t.same(process.listeners('uncaughtException'), before.exceptions, 'stopped: as they were');
  t.same(process.listeners('unhandledRejection'), before.rejections, 'stopped: as they were');
});

t.test('processHandlers: true installs one pair while started and removes it at stop', async (t) => {
  const before = listeners();
  const host = createHost({ config: { store: { dir: tempDir(t) } }, logger: silentLogger(), processHandlers: true });
  await host.start();
  t.same(listeners(), { exception: before.exception + 1, rejection: before.rejection + 1 });
  await host.stop({ graceMs: 0 });
  t.same(listeners(), before);
});

t.test(
  'jobhost start: a stray from an inline handler fails its run; an exception outside any run is fatal, exit 1, and the acknowledged runs are on disk',
  async (t) => {
    const dir = makeProject(t, { server: { port: 0 }, defaults: { isolation: 'inline' } }, { examples: false });
    writeFileSync(path.join(dir, 'plugins', 'work.ts'), "export default { name: 'work', handler: () => 'done' };\n");
    writeFileSync(
      path.join(dir, 'plugins', 'stray.ts'),
      // The throw comes from code the handler started: the process handler traces it to this run.
      "export default { name: 'stray', handler: () => { setImmediate(() => { throw new Error('thrown from a handler\\'s setImmediate'); }); return new Promise(() => undefined); } };\n",
    );
    writeFileSync(
      path.join(dir, 'plugins', 'ticker.ts'),
      // Module-level code of a plugin: a timer outside any run, which throws once the test says so.
      "import { existsSync } from 'node:fs';\nconst timer = setInterval(() => { if (existsSync('boom')) { clearInterval(timer); throw new Error('module timer went off'); } }, 20);\nexport default { name: 'ticker', handler: () => 'tick' };\n",
    );
    const app = await start(t, dir);
    const done = (await post(`${app.url}/jobs/work/run`)).json['runId'] as string;
    const later = (await post(`${app.url}/jobs/work/run`, { delay: '1h' })).json['runId'] as string;
    const stray = (await post(`${app.url}/jobs/stray/run`)).json['runId'] as string;
    await until(async () => (await runOf(app.url, done)).status === 'succeeded', 10_000, 'work succeeded');
    await until(async () => (await runOf(app.url, stray)).status === 'failed', 10_000, 'the stray run failed');
    t.match(await runOf(app.url, stray), { status: 'failed', error: { code: 'UNCAUGHT_EXCEPTION', message: "thrown from a handler's setImmediate" } });
    t.equal((await fetch(`${app.url}/health`)).status, 200, 'the host carries on after a stray of a run');

    writeFileSync(path.join(dir, 'boom'), '');
    const code = await app.exited;
    rmSync(path.join(dir, 'boom'));
    t.equal(code, 1, 'exits 1 for its supervisor to restart it');
    const fatal = app.lines.find((l) => l.level === 60 && l.msg.includes('outside any run'));
    t.ok(fatal, 'logged at fatal');
    t.match(fatal, { origin: 'uncaughtException', err: { message: 'module timer went off' } });
    t.notOk(
      app.lines.some((l) => l.event === 'host.stopped'),
      'no graceful stop on a broken process',
    );

    const again = await start(t, dir);
    t.teardown(() => void again.child.kill('SIGKILL'));
    t.match(await runOf(again.url, done), { status: 'succeeded', result: 'done' }, 'the finished run is on disk');
    t.match(await runOf(again.url, later), { status: 'queued' }, 'the acknowledged delayed run is on disk');
    t.match(await runOf(again.url, stray), { status: 'failed', error: { code: 'UNCAUGHT_EXCEPTION' } });
  },
);

t.test('jobhost start: a worker thread that never lets go (blocked reading a pipe) cannot hold the stop past grace + margin', async (t) => {
  const dir = makeProject(t, { server: { port: 0 }, shutdown: { grace: '1s', margin: '1s' }, workers: { size: 1, grace: '100ms' } }, { examples: false });
  const fifo = path.join(dir, 'never-written');
  execFileSync('mkfifo', [fifo]);
  writeFileSync(
    path.join(dir, 'plugins', 'stuck.ts'),
    // Opening a FIFO nobody writes blocks in the kernel: not even terminate() reaches the thread.
    // The progress says it is about to block; the host's terminate comes a grace (1 s) after SIGTERM.
    `import { readFileSync } from 'node:fs';\nexport default { name: 'stuck', isolation: 'worker', handler: async (ctx: { progress(f: number): void }) => { ctx.progress(0.5); await new Promise((r) => setTimeout(r, 50)); return readFileSync(${JSON.stringify(fifo)}, 'utf8'); } };\n`,
  );
  const app = await start(t, dir);
  const id = (await post(`${app.url}/jobs/stuck/run`)).json['runId'] as string;
  await until(async () => ((await runOf(app.url, id)) as { progress?: { fraction: number } }).progress?.fraction === 0.5, 20_000, 'stuck about to block');

  const t0 = Date.now();
  app.child.kill('SIGTERM');
  await app.exited;
  const took = Date.now() - t0;
  t.ok(took >= 2000 && took < 2000 + 5000, `ended soon after grace + margin, 2 s (${took} ms)`);
  t.equal(app.child.signalCode, 'SIGKILL', 'ended by SIGKILL: Node cannot exit while a thread it is terminating is blocked');
  t.ok(
    app.lines.some((l) => l.level === 50 && (l['err'] as { code?: string } | undefined)?.code === 'STOP_INCOMPLETE'),
    'logged STOP_INCOMPLETE before it went',
  );
  // The thread's executor, or (on a loaded machine, the abort past the grace settling late) the drain before it.
  const gaveUp = app.lines.find((l) => typeof l['step'] === 'string' && /^stop: gave up waiting for /.test(String(l['msg'])));
  t.match(gaveUp?.['step'], /^(executor|drain)$/, 'the log names the part it gave up on');
});
