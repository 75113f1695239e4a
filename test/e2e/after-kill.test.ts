import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Run } from '../../core/contract/run.js';
import { afterRunId } from '../../core/engine/ids.js';
import { until } from '../helpers.js';
import { makeProject, runCli } from './project.js';

/**
 * `after` survives kill -9 (SPEC §13): a `jobhost start` child is killed by its own handlers at
 * chosen moments (their work done, nothing recorded yet), and after each restart every child run
 * exists exactly once. A marker file per moment makes each kill happen once.
 */

const plugin = (name: string, body: string, extra = ''): string => `import { existsSync, writeFileSync } from 'node:fs';
const kill = (marker: string): void => {
  if (existsSync(marker)) return;
  writeFileSync(marker, '1');
  process.kill(process.pid, 'SIGKILL');
};
void kill;
export default {
  name: '${name}',
  ${extra}
  async handler(ctx: { params: { mode?: string; result?: { n: number } } }) {
    ${body}
  },
};
`;

t.test('kill -9 at the end of a parent, of a child, and of a last attempt: each child exists once after the restart', async (t) => {
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  const marker = (name: string): string => JSON.stringify(path.join(dir, name));
  const plugins = path.join(dir, 'plugins');
  // mode 'last': killed at the end of its only attempt (recovery fails it).
  writeFileSync(path.join(plugins, 'last.ts'), plugin('last', `kill(${marker('last')});\n    return 1;`, 'retry: { attempts: 1 },'));
  // mode 'child': the child is killed at the end of its first attempt, its parent's end long recorded.
  writeFileSync(
    path.join(plugins, 'load.ts'),
    plugin(
      'load',
      `if (ctx.params.result?.n === 8) kill(${marker('child')});\n    return (ctx.params.result?.n ?? 0) * 10;`,
      "after: [{ job: 'extract' }], retry: { attempts: 3, delay: 0 },",
    ),
  );
  writeFileSync(path.join(plugins, 'on-fail.ts'), plugin('on-fail', 'return 1;', "after: [{ job: 'last', status: 'failed' }],"));
  // extract: mode 'parent' is killed at the end of its first attempt; mode 'child' returns n = 8.
  // Five attempts: the parent's retry after a restart may be cut by the next start's kill (twice),
  // each an attempt. Its child is durable before its end (SPEC §13), so a kill between the two
  // keeps the child and runs the parent again: seen in CI with three attempts, all used up.
  writeFileSync(
    path.join(plugins, 'extract.ts'),
    plugin(
      'extract',
      `if (ctx.params.mode === 'parent') kill(${marker('parent')});\n    return { n: ctx.params.mode === 'child' ? 8 : 7 };`,
      'retry: { attempts: 5, delay: 0 },',
    ),
  );

  const start = async (): Promise<{ url: string; running: ReturnType<typeof runCli> }> => {
    const running = runCli(t, dir, ['start'], { LOG_LEVEL: 'info' });
    const line = await running.waitFor((l) => typeof l['url'] === 'string' && /jobhost started/.test(l.msg), 'the start', { ms: 30_000 });
    return { url: line['url'] as string, running };
  };
  const trigger = async (url: string, job: string, params: object): Promise<string> => {
    const res = await fetch(`${url}/jobs/${job}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ params }) });
    t.equal(res.status, 202, `trigger ${job}`);
    return ((await res.json()) as { runId: string }).runId;
  };
  const runs = async (url: string, job: string): Promise<Run[]> =>
    ((await (await fetch(`${url}/runs?job=${job}&limit=1000`)).json()) as { items: Run[] }).items;

  const parents: Record<string, string> = {};
  for (const mode of ['parent', 'child', 'last'] as const) {
    const { url, running } = await start();
    parents[mode] = await trigger(url, mode === 'last' ? 'last' : 'extract', { mode });
    t.equal(await running.exited, null, `killed by its own handler (${mode})`);
    t.equal(running.child.signalCode, 'SIGKILL');
  }

  const { url, running } = await start();
  await until(async () => (await runs(url, 'load')).filter((r) => r.status === 'succeeded').length === 2, 30_000, 'both load runs to succeed');
  await until(async () => (await runs(url, 'on-fail')).some((r) => r.status === 'succeeded'), 30_000, 'the on-fail run to succeed');
  const loads = await runs(url, 'load');
  t.equal(loads.length, 2, 'one load run per extract end: none lost, none doubled');
  for (const mode of ['parent', 'child'] as const) {
    const child = loads.find((r) => r.after?.runId === parents[mode]);
    t.ok(child, `the ${mode} case has its child`);
    t.equal(child?.id, afterRunId(parents[mode]!, 'load'));
  }
  // The killed attempt is on record as INTERRUPTED, or not at all when the kill beat its start's commit.
  t.match(
    loads.find((r) => r.after?.runId === parents['child']),
    { status: 'succeeded', result: 80 },
  );
  const extract = (await runs(url, 'extract')).find((r) => r.id === parents['parent']);
  // What the run says, should it not match: its attempts and error tell a kill from a recovery that went wrong.
  t.match(
    extract,
    { status: 'succeeded', result: { n: 7 } },
    `the parent ran again after the kill (${JSON.stringify({ attempts: extract?.attempts, error: extract?.error })})`,
  );
  t.ok(
    ['parent', 'child', 'last'].every((m) => existsSync(path.join(dir, m))),
    'every kill happened',
  );
  const onFail = await runs(url, 'on-fail');
  t.equal(onFail.length, 1, 'the last attempt that recovery failed triggered its failed child once');
  t.match(onFail[0], { id: afterRunId(parents['last']!, 'on-fail'), params: { status: 'failed', runId: parents['last'] } });
  running.child.kill('SIGTERM');
  t.equal(await running.exited, 0);
});
