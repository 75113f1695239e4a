import { execFile, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { captureLogger, startServer, tempDir, until } from '../helpers.js';
import { addKillPlugin } from './kill-cycles.js';
import { BIN, childEnv, makeProject, runCli } from './project.js';

const execFileAsync = promisify(execFile);

/**
 * The scenario with the real process: `jobhost start`, runs over HTTP, kill -9, a few
 * bytes overwritten in the middle of a sealed history segment, a restart; then the operator's
 * side: `/ready`, `jobhost store damage` and `jobhost store ack-damage`.
 */

/** Runs until the file `release` exists: a run the test holds in the running state. */
const HELD_PLUGIN = `import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
export default {
  name: 'held',
  retry: { attempts: 2, delay: 0 },
  async handler(ctx: { params: { release: string } }) {
    while (!existsSync(ctx.params.release)) await sleep(10);
    return { released: true };
  },
};
`;

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

t.test(
  'kill -9, then bytes overwritten in a sealed segment: an error naming the file, the lines and the run; /ready warns until `jobhost store ack-damage`',
  async (t) => {
    // keepRuns 1000: segments of 100 runs, so 251 runs seal two of them.
    const dir = makeProject(t, { server: { port: 0 }, store: { keepRuns: 1000 } }, { examples: false });
    addKillPlugin(dir);
    writeFileSync(path.join(dir, 'plugins', 'held.ts'), HELD_PLUGIN);
    const release = path.join(dir, 'release');
    const first = runCli(t, dir, ['start']);
    const started = await first.waitFor((l) => /dashboard and API at http/.test(l.msg), 'the URL');
    let url = String(started['url']);
    const status = async (id: string): Promise<string> => ((await (await fetch(`${url}/runs/${id}`)).json()) as { status: string }).status;
    const ids: string[] = [];
    const trigger = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, (_, k) => post(`${url}/jobs/work/run`, { params: { n: i + k } })));
        for (const res of batch) ids.push(((await res.json()) as { runId: string }).runId);
      }
    };
    const succeeded = async (): Promise<number> =>
      ((await (await fetch(`${url}/runs?job=work&status=succeeded&limit=1000`)).json()) as { items: unknown[] }).items.length;

    // The victim: a run the journal holds as running when its final record is damaged. Group
    // commit journals a run as it is when its commit starts, so a run that finishes before then
    // has no journal record at all (the SPEC does not promise one): a `work` run cannot be the
    // victim. `held` stays running until the test creates `release`; the 202s of the triggers
    // below come from commits after its start was saved, so its running state is on disk then.
    const victim = ((await (await post(`${url}/jobs/held/run`, { params: { release } })).json()) as { runId: string }).runId;
    await until(async () => (await status(victim)) === 'running', 30_000, 'the held run running');
    // 50 finished runs, then the victim's final record (line 51 of segment 1), then 200 more.
    await trigger(0, 50);
    await until(async () => (await succeeded()) === 50, 60_000, 'the first 50 runs');
    writeFileSync(release, '');
    await until(async () => (await status(victim)) === 'succeeded', 30_000, 'the released run');
    await trigger(50, 250);
    await until(async () => (await succeeded()) === 250, 60_000, 'every run finished');
    // A finished run shows before its commit: one more acknowledged trigger (delayed, so it
    // only waits) comes after every final record above is durable.
    t.equal((await post(`${url}/jobs/work/run`, { delay: '1h' })).status, 202);
    first.child.kill('SIGKILL');
    await first.exited;

    // Segment 1 is sealed, and read at the next start (no checkpoint has indexed it).
    const seg = path.join(dir, 'data', 'segments', '1.ndjson');
    const lines = readFileSync(seg, 'utf8').split('\n');
    t.ok(lines.length - 1 >= 100, 'segment 1 is full (its successor is created ahead, at half full)');
    t.equal(
      lines.findIndex((l) => l.includes(`"id":"${victim}"`)),
      50,
      'the victim is line 51',
    );
    const fd = openSync(seg, 'r+');
    writeSync(
      fd,
      Buffer.from('####'),
      0,
      4,
      Buffer.byteLength(
        lines
          .slice(0, 50)
          .map((l) => `${l}\n`)
          .join(''),
      ) + lines[50]!.indexOf('"source"'),
    );
    closeSync(fd);

    const second = runCli(t, dir, ['start']);
    const restarted = await second.waitFor((l) => /dashboard and API at http/.test(l.msg), 'the URL after the restart');
    url = String(restarted['url']);
    const error = second.lines.find((l) => l['code'] === 'STORE_DAMAGED');
    t.ok(error, 'an error line for the damage');
    // No checkpoint since the first start: the journal still has the victim as running.
    t.match(error, {
      level: 50,
      file: seg,
      lines: [51],
      lost: [{ line: 51, record: 'finished run', runId: victim, job: 'held', status: 'succeeded', loadedElsewhere: true }],
      aside: /^segments\/1\.ndjson\.damaged-\d+$/,
    });
    t.notOk(
      second.lines.some((l) => l['code'] === 'STORE_CORRUPT' && l.level === 40 && l['file'] === seg),
      'not called a torn tail',
    );

    const ready = await fetch(`${url}/ready`);
    t.equal(ready.status, 200);
    const body = (await ready.json()) as { warnings: Array<{ id: string; code: string; file: string; lines: number[] }> };
    t.match(body.warnings, [{ code: 'STORE_DAMAGED', file: 'segments/1.ndjson', lines: [51] }]);
    // Its final record is lost; what the journal knew of it is recovered, and it runs again (at least once).
    await until(async () => ((await (await fetch(`${url}/runs/${victim}`)).json()) as { status: string }).status === 'succeeded', 30_000, 'the recovered run');
    t.match(await (await fetch(`${url}/runs/${victim}`)).json(), { source: 'recovery', attempts: [{ error: { code: 'INTERRUPTED' } }, { error: null }] });
    t.equal((await fetch(`${url}/runs/${ids[0]}`)).status, 200, 'the lines around it loaded');
    t.match(await (await fetch(`${url}/metrics`)).text(), /^jobhost_store_damaged_lines_total 1$/m);

    const cli = (args: string[]) =>
      spawnSync(process.execPath, [BIN, ...args, '--url', url], {
        cwd: dir,
        encoding: 'utf8',
        env: childEnv({ JOBHOST_URL: undefined, JOBHOST_TOKEN: undefined }),
        timeout: 60_000,
      });
    const listed = cli(['store', 'damage']);
    t.equal(listed.status, 0, listed.stderr);
    t.match(listed.stdout, new RegExp(`^${body.warnings[0]!.id}  segments/1\\.ndjson  line 51  found \\S+  not acknowledged$`, 'm'));
    t.match(listed.stdout, new RegExp(`the final record of run ${victim} of job held`));
    const unknown = cli(['store', 'ack-damage', 'nope']);
    t.equal(unknown.status, 1);
    t.match(unknown.stderr, /no damage report nope/);
    const acked = cli(['store', 'ack-damage']);
    t.equal(acked.status, 0, acked.stderr);
    t.match(acked.stdout, new RegExp(`^acknowledged ${body.warnings[0]!.id}  segments/1\\.ndjson$`, 'm'));
    t.same(((await (await fetch(`${url}/ready`)).json()) as { warnings: unknown[] }).warnings, []);
    t.match(cli(['store', 'ack-damage']).stdout, /nothing to acknowledge/);

    second.child.kill('SIGTERM');
    t.equal(await second.exited, 0);
  },
);

t.test('a sealed segment deleted from outside: a damage report naming how many finished runs it held, listed by `jobhost store damage`', async (t) => {
  const dir = tempDir(t);
  const store = { storeOptions: { segmentSize: 5 }, config: { store: { keepRuns: 1000 } } };
  const a = await startServer(t, { dir, ...store });
  a.host.register({ name: 'a', handler: () => undefined });
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push((await a.host.wait((await a.host.trigger('a')).runId)).id);
  await a.host.stop(); // segments 1 and 2 are sealed and in the checkpoint's index
  await a.clock.advance(1000);
  rmSync(path.join(dir, 'segments', '1.ndjson'));

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir, ...store, logger, clock: a.clock });
  const ready = await b.request('GET', '/ready');
  t.equal(ready.status, 200);
  const warnings = ready.json['warnings'] as Array<{ id: string; message: string }>;
  t.match(warnings, [{ code: 'STORE_DAMAGED', kind: 'segment', n: 1, file: 'segments/1.ndjson', absent: true, missing: 5, lines: [], lost: [], aside: null }]);
  t.match(warnings[0]!.message, /segments\/1\.ndjson is missing .*the 5 finished runs the checkpoint counted in it are gone from history/);
  t.match(
    logs.filter((l) => l['code'] === 'STORE_DAMAGED'),
    [{ level: 50, damageId: warnings[0]!.id, missing: 5 }],
  );
  t.match(await b.metrics(), /^jobhost_store_damaged_lines_total 5$/m);
  t.same(
    (await b.host.runs({ limit: 100 })).items.map((r) => r.id),
    ids.slice(5).reverse(),
    'the other segments load',
  );
  // Not spawnSync: this process serves the request the CLI makes.
  const listed = await execFileAsync(process.execPath, [BIN, 'store', 'damage', '--url', b.url], {
    cwd: dir,
    encoding: 'utf8',
    env: childEnv({ JOBHOST_URL: undefined, JOBHOST_TOKEN: undefined }),
    timeout: 60_000,
  });
  t.match(listed.stdout, new RegExp(`^${warnings[0]!.id}  segments/1\\.ndjson  lines -  found \\S+  not acknowledged$`, 'm'));
  t.match(listed.stdout, /the 5 finished runs the checkpoint counted in it are gone from history/);
  await b.host.stop();

  // Kept across a restart (the new index no longer lists the segment, so it is not found again) until acknowledged.
  const again = captureLogger();
  const c = await startServer(t, { dir, ...store, logger: again.logger, clock: a.clock });
  t.same(
    c.host.storeHealth().damage.map((r) => [r.id, r.acknowledgedAt]),
    [[warnings[0]!.id, null]],
  );
  t.equal(again.lines.filter((l) => l['code'] === 'STORE_DAMAGED').length, 0);
  await c.host.ackStoreDamage();
  await c.host.stop();
  const d = await startServer(t, { dir, ...store, clock: a.clock });
  t.same(d.host.storeHealth().damage, [], 'acknowledged, and its file is gone: dropped');
  t.same(
    readdirSync(path.join(dir, 'segments')).filter((f) => f.includes('.damaged-')),
    [],
    'nothing to copy',
  );
});
