import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { until } from '../helpers.js';
import { addKillPlugin } from './kill-cycles.js';
import { BIN, childEnv, makeProject, runCli } from './project.js';

/**
 * The scenario with the real process: `jobhost start`, runs over HTTP, kill -9, a few
 * bytes overwritten in the middle of a sealed history segment, a restart; then the operator's
 * side: `/ready`, `jobhost store damage` and `jobhost store ack-damage`.
 */

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

t.test(
  'kill -9, then bytes overwritten in a sealed segment: an error naming the file, the lines and the run; /ready warns until `jobhost store ack-damage`',
  async (t) => {
    // keepRuns 1000: segments of 100 runs, so 250 runs seal two of them.
    const dir = makeProject(t, { server: { port: 0 }, store: { keepRuns: 1000 } }, { examples: false });
    addKillPlugin(dir);
    const first = runCli(t, dir, ['start']);
    const started = await first.waitFor((l) => /dashboard and API at http/.test(l.msg), 'the URL');
    let url = String(started['url']);
    const ids: string[] = [];
    for (let i = 0; i < 250; i += 10) {
      const batch = await Promise.all(Array.from({ length: 10 }, (_, k) => post(`${url}/jobs/work/run`, { params: { n: i + k } })));
      for (const res of batch) ids.push(((await res.json()) as { runId: string }).runId);
    }
    // All of them finished, and segment 1 is sealed (a batch may fill a segment past 100).
    await until(
      async () => {
        const page = (await (await fetch(`${url}/runs?status=succeeded&limit=1000`)).json()) as { items: unknown[] };
        return page.items.length === ids.length && readdirSync(path.join(dir, 'data', 'segments')).includes('2.ndjson');
      },
      60_000,
      'every run finished',
    );
    first.child.kill('SIGKILL');
    await first.exited;

    // Line 50 of segment 1: sealed, and read at the next start (no checkpoint has indexed it).
    const seg = path.join(dir, 'data', 'segments', '1.ndjson');
    const lines = readFileSync(seg, 'utf8').split('\n');
    const victim = (JSON.parse(lines[49]!) as { id: string }).id;
    const fd = openSync(seg, 'r+');
    writeSync(
      fd,
      Buffer.from('####'),
      0,
      4,
      Buffer.byteLength(
        lines
          .slice(0, 49)
          .map((l) => `${l}\n`)
          .join(''),
      ) + lines[49]!.indexOf('"source"'),
    );
    closeSync(fd);

    const second = runCli(t, dir, ['start']);
    const restarted = await second.waitFor((l) => /dashboard and API at http/.test(l.msg), 'the URL after the restart');
    url = String(restarted['url']);
    const error = second.lines.find((l) => l['code'] === 'STORE_DAMAGED');
    t.ok(error, 'an error line for the damage');
    // No checkpoint since the first start: the journal still has the run as queued or running.
    t.match(error, {
      level: 50,
      file: seg,
      lines: [50],
      lost: [{ line: 50, record: 'finished run', runId: victim, job: 'work', loadedElsewhere: true }],
      aside: /^segments\/1\.ndjson\.damaged-\d+$/,
    });
    t.notOk(
      second.lines.some((l) => l['code'] === 'STORE_CORRUPT' && l.level === 40 && l['file'] === seg),
      'not called a torn tail',
    );

    const ready = await fetch(`${url}/ready`);
    t.equal(ready.status, 200);
    const body = (await ready.json()) as { warnings: Array<{ id: string; code: string; file: string; lines: number[] }> };
    t.match(body.warnings, [{ code: 'STORE_DAMAGED', file: 'segments/1.ndjson', lines: [50] }]);
    // Its final record is lost; what the journal knew of it is recovered, and it runs again (at least once).
    await until(async () => ((await (await fetch(`${url}/runs/${victim}`)).json()) as { status: string }).status === 'succeeded', 30_000, 'the recovered run');
    // The journal knew it as running when its start was committed apart from its end (its attempt
    // then ends INTERRUPTED), else as queued: which one depends on how fast the handler was.
    const recovered = (await (await fetch(`${url}/runs/${victim}`)).json()) as { source: string };
    if (recovered.source === 'recovery') t.match(recovered, { attempts: [{ error: { code: 'INTERRUPTED' } }, { error: null }] });
    else t.match(recovered, { source: 'http', attempts: [{ error: null }] });
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
    t.match(listed.stdout, new RegExp(`^${body.warnings[0]!.id}  segments/1\\.ndjson  line 50  found \\S+  not acknowledged$`, 'm'));
    t.match(listed.stdout, new RegExp(`the final record of run ${victim} of job work`));
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
