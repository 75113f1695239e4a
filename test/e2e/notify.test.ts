import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { until } from '../helpers.js';
import { closedPort } from '../live-host.js';
import { httpReceiver, newSecret } from '../receivers.js';
import { makeProject, type Running, runCli } from './project.js';

/** Delivered notifications as a user meets them: `jobhost start` killed -9 with deliveries open, `jobhost notify test`, `jobhost validate`. */

const FAILING = `export default {
  name: 'nightly-export',
  isolation: 'inline',
  notify: { title: 'Nightly export', on: ['failed'], to: ['ops-hook'] },
  handler() { throw new Error('disk on fire'); },
};
`;

async function start(t: Parameters<typeof runCli>[0], dir: string, env: NodeJS.ProcessEnv = {}): Promise<Running & { url: string }> {
  const app = runCli(t, dir, ['start'], env);
  const line = await app.waitFor((l) => typeof l['url'] === 'string' && l.msg.startsWith('jobhost started'), 'the started line', { ms: 30_000 });
  return Object.assign(app, { url: line['url'] as string });
}

const post = (url: string, body: unknown = {}): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

interface Listed {
  items: Array<{ id: string; deliveries: Array<{ id: string; status: string; attempts: number }> }>;
}

t.test('receiver down across a kill -9 of the host: the delivery is made after the restart, under its id, signed', async (t) => {
  const port = await closedPort();
  const secret = newSecret();
  const dir = makeProject(
    t,
    {
      server: { port: 0 },
      notifications: {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's own ${NAME} syntax
        destinations: { 'ops-hook': { kind: 'webhook', url: `http://127.0.0.1:${port}/hook`, secret: '${OPS_HOOK_SECRET}' } },
        retry: { delay: '500ms', maxDelay: '1s' },
      },
    },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins/nightly-export.mjs'), FAILING);
  const env = { OPS_HOOK_SECRET: secret };
  const first = await start(t, dir, env);
  const runId = ((await (await post(`${first.url}/jobs/nightly-export/run`)).json()) as { runId: string }).runId;
  t.ok(runId);
  let listed: Listed = { items: [] };
  await until(
    async () => {
      listed = (await (await fetch(`${first.url}/notifications`)).json()) as Listed;
      return listed.items[0]?.deliveries[0]?.status === 'retrying';
    },
    15_000,
    'the delivery retrying against a closed port',
  );
  const delivery = listed.items[0]!.deliveries[0]!;
  first.child.kill('SIGKILL');
  await first.exited;

  const hook = await httpReceiver(t, { secret, port });
  const again = await start(t, dir, env);
  await hook.count(1, 20_000);
  t.equal(hook.received[0]!.verified, true, 'signed with the secret from the environment');
  t.equal(hook.received[0]!.headers['webhook-id'], delivery.id, 'the same id as before the kill');
  t.match(hook.received[0]!.json, { job: 'nightly-export', runId, status: 'failed' });
  await until(
    async () => {
      const l = (await (await fetch(`${again.url}/notifications`)).json()) as Listed;
      return l.items[0]?.deliveries[0]?.status === 'delivered';
    },
    10_000,
    'delivered after the restart',
  );
  // A notification made while the host listens links to the run there (no server.publicUrl set).
  const second = ((await (await post(`${again.url}/jobs/nightly-export/run`)).json()) as { runId: string }).runId;
  await hook.count(2, 20_000);
  t.equal((hook.received[1]!.json as { url?: string }).url, `${again.url}/#/runs/${second}`, 'the link is where the host listens');
  t.notOk(JSON.stringify(again.lines).includes(secret.slice(6)), 'the secret is in no log line');
  again.child.kill('SIGTERM');
  t.equal(await again.exited, 0);
});

t.test('jobhost notify test prints the receiver answer and exits 1 unless it took it; validate names a missing destination', async (t) => {
  const hook = await httpReceiver(t);
  const dir = makeProject(
    t,
    { server: { port: 0 }, notifications: { destinations: { 'ops-hook': { kind: 'webhook', url: `${hook.url}/x` } } } },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins/nightly-export.mjs'), FAILING);
  const valid = runCli(t, dir, ['validate']);
  t.equal(await valid.exited, 0, valid.stderr());

  const app = await start(t, dir);
  const ok = runCli(t, dir, ['notify', 'test', 'ops-hook', '--url', app.url]);
  t.equal(await ok.exited, 0);
  t.match(
    ok.lines.map((l) => l.msg).join('\n'),
    /^delivered: ops-hook \(webhook, http:\/\/127\.0\.0\.1:\d+\/…\) in \d+ ms\n {2}the receiver answered 200: ok$/,
  );
  hook.fallback = { status: 410, body: 'gone for good' };
  const refused = runCli(t, dir, ['notify', 'test', 'ops-hook', '--url', app.url]);
  t.equal(await refused.exited, 1);
  t.match(refused.lines.map((l) => l.msg).join('\n'), /not delivered[\s\S]*answered 410: gone for good[\s\S]*RECEIVER_REJECTED/);
  // A wait Node's fetch would cut at 300 s (as "fetch failed") is refused up front.
  const tooLong = runCli(t, dir, ['notify', 'test', 'ops-hook', '--timeout', '400s', '--url', app.url]);
  t.equal(await tooLong.exited, 2);
  t.match(tooLong.stderr(), /--timeout.*at most 290s/);
  const unknown = runCli(t, dir, ['notify', 'test', 'nope', '--url', app.url]);
  t.not(await unknown.exited, 0);
  t.match(unknown.stderr(), /DESTINATION_NOT_FOUND|no destination "nope"/);
  const listed = runCli(t, dir, ['notify', 'destinations', '--url', app.url]);
  t.equal(await listed.exited, 0);
  t.match(listed.lines.map((l) => l.msg).join('\n'), /ops-hook {2}webhook {2}http:\/\/127\.0\.0\.1:\d+\/…\n0 deliveries waiting/);
  app.child.kill('SIGTERM');
  await app.exited;

  writeFileSync(path.join(dir, 'plugins/nightly-export.mjs'), FAILING.replace("to: ['ops-hook']", "to: ['ops-hook', 'pager']"));
  const invalid = runCli(t, dir, ['validate']);
  t.not(await invalid.exited, 0);
  t.match(invalid.stderr() + invalid.lines.map((l) => l.msg).join('\n'), /DESTINATION_NOT_FOUND[\s\S]*nightly-export[\s\S]*"pager"/);
});
