import t from 'tap';
import type { AuditRecord } from '../../core/contract/audit.js';
import { createServer } from '../../core/server/server.js';
import { freshPrefix, startCluster } from '../cluster.js';
import { startRedis } from '../redis.js';

/** SPEC §14 in cluster mode: three hosts on one Redis share one audit trail, and its retention. */

const OPERATOR = 'operator-token-for-the-cluster-0123';
const VIEWER = 'viewer-token-for-the-cluster-012345';
const tokens = [
  { name: 'ops', token: OPERATOR, role: 'operator' as const },
  { name: 'dash', token: VIEWER, role: 'viewer' as const },
];
const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

t.test('changes taken by three hosts land in one trail, read the same from each; retention keeps keepRuns', async (t) => {
  const redis = await startRedis(t);
  const prefix = freshPrefix();
  const hosts = await startCluster(t, redis, 3, {
    prefix,
    config: { server: { tokens }, store: { keepRuns: 20 } },
    plugins: [{ name: 'work', handler: () => 'ok' }],
  });
  const urls: string[] = [];
  for (const h of hosts) {
    const server = createServer(h.host, { host: '127.0.0.1', port: 0 });
    urls.push((await server.listen()).url);
    t.teardown(() => server.close());
  }
  // Each host takes changes: made by the operator, refused to the viewer.
  const sent: Array<{ target: string; outcome: string; host: string }> = [];
  for (let i = 0; i < 12; i++) {
    const h = i % 3;
    const token = i % 4 === 3 ? VIEWER : OPERATOR;
    const res = await fetch(`${urls[h]}/events/c-${i}`, { method: 'POST', headers: auth(token), body: '{}' });
    t.equal(res.status, token === VIEWER ? 403 : 202);
    sent.push({ target: `event:c-${i}`, outcome: token === VIEWER ? 'forbidden' : 'ok', host: `h${h}` });
  }
  const pages: AuditRecord[][] = [];
  for (const url of urls) pages.push(((await (await fetch(`${url}/audit?limit=100`, { headers: auth(VIEWER) })).json()) as { items: AuditRecord[] }).items);
  t.same(pages[1], pages[0], 'host 1 reads what host 0 reads');
  t.same(pages[2], pages[0], 'host 2 reads what host 0 reads');
  // Ids start with the time of the host that took the change: two hosts in one millisecond may sort either way.
  const byTarget = (a: { target: string }, b: { target: string }): number => (a.target < b.target ? -1 : 1);
  t.same(
    pages[0]!.map((r) => ({ target: r.target, outcome: r.outcome, host: r.host })).sort(byTarget),
    [...sent].sort(byTarget),
    'every host’s records, each naming the host that took it',
  );
  t.ok(
    pages[0]!.every((r, i) => i === 0 || r.id < pages[0]![i - 1]!.id),
    'newest first',
  );
  // A filter and a cursor across the shared trail.
  const first = (await (await fetch(`${urls[2]}/audit?outcome=ok&limit=4`, { headers: auth(VIEWER) })).json()) as { items: AuditRecord[]; next: string };
  const rest = (await (await fetch(`${urls[0]}/audit?outcome=ok&before=${first.next}`, { headers: auth(VIEWER) })).json()) as { items: AuditRecord[] };
  t.same(
    [...first.items, ...rest.items].map((r) => r.id),
    pages[0]!.filter((r) => r.outcome === 'ok').map((r) => r.id),
    'the pages follow each other',
  );

  // A record of a kept id replaces it, as in one host's trail (a request's record stamped ahead,
  // then its refusal), whichever host writes it.
  const entry = { token: 'ops', action: 'job.run', target: 'job:replaced', ip: '127.0.0.1', outcome: 'ok' as const, status: 202, code: null };
  const stamped = await hosts[0]!.host.audit.record(entry);
  await hosts[1]!.host.audit.record({ ...entry, outcome: 'error', status: 503, code: 'BACKEND_UNAVAILABLE' }, stamped.id);
  const replaced = ((await (await fetch(`${urls[2]}/audit?target=job:replaced`, { headers: auth(VIEWER) })).json()) as { items: AuditRecord[] }).items;
  t.same(
    replaced.map((r) => ({ id: r.id, outcome: r.outcome, code: r.code, host: r.host })),
    [{ id: stamped.id, outcome: 'error', code: 'BACKEND_UNAVAILABLE', host: 'h1' }],
    'one record of the id: the last written',
  );

  // Retention: the newest keepRuns (20) records of the cluster.
  for (let i = 12; i < 30; i++) await fetch(`${urls[i % 3]}/jobs/work/run`, { method: 'POST', headers: auth(OPERATOR), body: '{}' });
  const kept = (await (await fetch(`${urls[1]}/audit?limit=1000`, { headers: auth(VIEWER) })).json()) as { items: AuditRecord[] };
  t.equal(kept.items.length, 20);
  t.equal(kept.items.filter((r) => r.target === 'job:work').length, 18, 'the newest are kept, the oldest went');
});
