import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { AuditRecord } from '../../core/contract/audit.js';
import { BIN, childEnv, makeProject, runCli } from './project.js';

/**
 * SPEC §14: audit records are as durable as runs. A `jobhost start` child takes a stream of
 * changes (some made, some refused) and is killed with SIGKILL at a moment of the test's choosing;
 * after each restart every change that got an answer has its record.
 */

const OPERATOR = 'operator-token-for-the-kill-test-0123';
const VIEWER = 'viewer-token-for-the-kill-test-01234';
const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

async function startHost(t: Parameters<typeof runCli>[0], dir: string): Promise<{ url: string; kill(): Promise<void> }> {
  const running = runCli(t, dir, ['start'], { LOG_LEVEL: 'info' });
  const line = await running.waitFor((l) => typeof l['url'] === 'string' && /jobhost started/.test(l.msg), 'the start', { ms: 30_000 });
  return {
    url: line['url'] as string,
    kill: async () => {
      running.child.kill('SIGKILL');
      await running.exited;
    },
  };
}

async function allRecords(url: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let before: string | undefined;
  for (;;) {
    const res = await fetch(`${url}/audit?limit=1000${before ? `&before=${before}` : ''}`, { headers: auth(VIEWER) });
    const page = (await res.json()) as { items: AuditRecord[]; next?: string };
    out.push(...page.items);
    if (!page.next) return out;
    before = page.next;
  }
}

t.test('kill -9 while changes are answered: every answered change has its audit record after the restart', async (t) => {
  const dir = makeProject(
    t,
    {
      server: {
        port: 0,
        tokens: [
          { name: 'ops', token: OPERATOR, role: 'operator' },
          { name: 'dash', token: VIEWER, role: 'viewer' },
        ],
      },
      store: { keepRuns: 100_000 },
    },
    { examples: false },
  );
  writeFileSync(path.join(dir, 'plugins/later.mjs'), "export default { name: 'later', isolation: 'inline', handler: () => 'ok' };\n");
  const answered = new Map<string, 'ok' | 'forbidden'>();
  // Triggers answered 202: each one's run, and its ok record (carried in the run's commit).
  const triggered: string[] = [];
  let n = 0;
  for (let cycle = 0; cycle < 3; cycle++) {
    const host = await startHost(t, dir);
    const before = await allRecords(host.url);
    for (const [target, outcome] of answered) {
      t.ok(
        before.some((r) => r.target === target && r.outcome === outcome),
        `cycle ${cycle}: ${target} (${outcome})`,
      );
    }
    // Ten clients send changes (an event published by the operator, or refused to the viewer) until the kill.
    let killed = false;
    const client = async (): Promise<void> => {
      while (!killed) {
        const i = n++;
        const target = `k${cycle}-${i}`;
        const token = i % 4 === 0 ? VIEWER : OPERATOR;
        try {
          if (i % 4 === 2) {
            const res = await fetch(`${host.url}/jobs/later/run`, { method: 'POST', headers: auth(OPERATOR), body: '{}' });
            const body = (await res.json()) as { runId?: string };
            if (res.status === 202) triggered.push(body.runId!);
            continue;
          }
          const res = await fetch(`${host.url}/events/${target}`, { method: 'POST', headers: auth(token), body: '{}' });
          await res.arrayBuffer();
          if (res.status === 202) answered.set(`event:${target}`, 'ok');
          else if (res.status === 403) answered.set(`event:${target}`, 'forbidden');
        } catch {
          return; // the host is gone: what got no answer was never acknowledged
        }
      }
    };
    const clients = Array.from({ length: 10 }, () => client());
    // The kill comes after a few hundred answers, at whatever point the clients are then.
    const seen = answered.size;
    const deadline = Date.now() + 60_000;
    while (answered.size < seen + 200 + cycle * 97) {
      if (Date.now() > deadline) throw new Error(`only ${answered.size - seen} answers in 60 s`);
      await new Promise((r) => setImmediate(r));
    }
    await host.kill();
    killed = true;
    await Promise.all(clients);
  }
  const last = await startHost(t, dir);
  const records = await allRecords(last.url);
  const missing = [...answered].filter(([target, outcome]) => !records.some((r) => r.target === target && r.outcome === outcome));
  t.ok(answered.size >= 600, `${answered.size} changes answered`);
  t.same(missing, [], 'no answered change is missing from the audit');
  // One record per request at most: fewer ok job.run records than 202s would mean an answered trigger lost its record.
  const okTriggers = records.filter((r) => r.action === 'job.run' && r.target === 'job:later' && r.outcome === 'ok').length;
  t.ok(triggered.length >= 100, `${triggered.length} triggers answered 202`);
  t.ok(okTriggers >= triggered.length, `${okTriggers} ok trigger records for ${triggered.length} answered triggers`);
  const lost: string[] = [];
  for (const id of triggered) if ((await fetch(`${last.url}/runs/${id}`, { headers: auth(VIEWER) })).status !== 200) lost.push(id);
  t.same(lost, [], 'every answered trigger has its run');
  t.ok(
    records.some((r) => r.outcome === 'forbidden' && r.token === 'dash'),
    'refusals are recorded too',
  );

  // The CLI reads the same trail, and says who the token is.
  const cli = (args: string[], token: string): Promise<{ code: number | null; out: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: childEnv({ JOBHOST_URL: last.url, JOBHOST_TOKEN: token }),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.on('close', (code) => resolve({ code, out }));
    });
  const who = await cli(['whoami'], OPERATOR);
  t.equal(who.code, 0);
  t.match(who.out, /^ops {2}operator/);
  const page = await cli(['audit', '--by', 'dash', '--outcome', 'forbidden', '--limit', '3', '--json'], VIEWER);
  t.equal(page.code, 0);
  const parsed = JSON.parse(page.out) as { items: AuditRecord[]; next?: string };
  t.equal(parsed.items.length, 3);
  t.ok(parsed.items.every((r) => r.token === 'dash' && r.outcome === 'forbidden' && r.action === 'event.publish'));
  await last.kill();
});
