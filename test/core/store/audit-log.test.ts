import t from 'tap';
import type { AuditRecord } from '../../../core/contract/audit.js';
import { createManualClock } from '../../../core/contract/clock.js';
import type { AuditEntry } from '../../../core/engine/audit.js';
import { createIdGenerator } from '../../../core/engine/ids.js';
import { AuditLog } from '../../../core/store/audit-log.js';
import { auditLine } from '../../../core/store/serialize.js';
import { startHost, tempDir } from '../../helpers.js';

const entry = (target: string, outcome: AuditEntry['outcome'] = 'ok'): AuditEntry => ({
  token: 'anonymous',
  action: 'job.run',
  target,
  ip: '127.0.0.1',
  outcome,
  status: outcome === 'ok' ? 202 : 503,
  code: outcome === 'ok' ? null : 'STORE_WRITE_FAILED',
});

t.test('the local trail: a record of a kept id replaces it in place, any other is added, in memory and after a restart', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir, config: { store: { keepRuns: 20 } } });
  // Three ids in time order; the middle one comes last (a record stamped ahead whose write came later).
  const [first, middle, last] = [a.host.audit.stamp(entry('job:a')), a.host.audit.stamp(entry('job:b')), a.host.audit.stamp(entry('job:c'))];
  await a.host.audit.record(entry('job:a'), first.id);
  await a.host.audit.record(entry('job:c'), last.id);
  await a.host.audit.record(entry('job:b'), middle.id);
  // A refusal under a kept id replaces its record where it stands.
  await a.host.audit.record(entry('job:a', 'error'), first.id);
  await a.host.audit.record(entry('job:b', 'error'), middle.id);
  const expected = [
    { id: last.id, target: 'job:c', outcome: 'ok' },
    { id: middle.id, target: 'job:b', outcome: 'error' },
    { id: first.id, target: 'job:a', outcome: 'error' },
  ];
  t.match((await a.host.audit.list()).items, expected, 'one record per id, newest id first, whatever order they came in');
  t.equal((await a.host.audit.list()).items.length, 3);

  // New records after the replacements (the index of ids now exists), then past the trim (keepRuns × 2).
  const later: AuditRecord[] = [];
  for (let i = 0; i < 45; i++) later.push(await a.host.audit.record(entry(`job:n${i}`)));
  await a.host.audit.record(entry('job:n44', 'error'), later[44]!.id);
  await a.host.audit.record(entry('job:n30', 'error'), later[30]!.id);
  const kept = (await a.host.audit.list({ limit: 1000 })).items;
  t.equal(kept.length, 20, 'retention keeps keepRuns records');
  t.equal(new Set(kept.map((r) => r.id)).size, 20, 'no id twice');
  t.match(kept[0], { id: later[44]!.id, outcome: 'error' }, 'the newest, replaced');
  t.match(
    kept.find((r) => r.id === later[30]!.id),
    { target: 'job:n30', outcome: 'error' },
    'a replacement after a trim',
  );
  await a.host.stop();

  // The journal replays every line: the last one of an id wins, at its id's place.
  const b = await startHost(t, { dir, clock: a.clock, config: { store: { keepRuns: 20 } } });
  t.same(
    (await b.host.audit.list({ limit: 1000 })).items.map((r) => [r.id, r.outcome]),
    kept.map((r) => [r.id, r.outcome]),
    'the same trail after a restart',
  );
  // An id not kept, below kept ones (a clock set back across a restart, say), is added at its place, not lost, and not a duplicate.
  const stray = `${later[39]!.id.slice(0, -3)}zzz`;
  t.ok(stray > later[39]!.id && stray < later[40]!.id);
  await b.host.audit.record(entry('job:stray'), stray);
  await b.host.audit.record(entry('job:stray', 'error'), stray);
  const after = (await b.host.audit.list({ limit: 1000 })).items;
  t.same(
    after.slice(4, 7).map((r) => [r.id, r.outcome]),
    [
      [later[40]!.id, 'ok'],
      [stray, 'error'],
      [later[39]!.id, 'ok'],
    ],
  );
  t.equal(after.filter((r) => r.id === stray).length, 1);
});

t.test('a trail read back out of id order (a journal, or a checkpoint written before records were sorted) lists newest first and pages whole', async (t) => {
  const clock = createManualClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const log = new AuditLog({ keepRuns: 100, keepDays: 0, clock }, { audit: () => undefined }, () => Promise.resolve());
  const newId = createIdGenerator(() => clock.now());
  const record = (target: string, id = newId()): AuditRecord => ({ id, at: '2026-01-05T12:00:00.000Z', ...entry(target), host: 'h' });
  const [a, b, c, d] = [record('job:a'), record('job:b'), record('job:c'), record('job:d')];
  // `a` was stamped first and written last, after the others' records.
  log.restore([b, c, a, d]);
  const ids = async (query = {}): Promise<string[]> => (await log.list(query)).items.map((r) => r.target);
  t.same(await ids(), ['job:d', 'job:c', 'job:b', 'job:a'], 'newest first by id');
  const paged: string[] = [];
  let before: string | undefined;
  for (let i = 0; i < 6 && (i === 0 || before !== undefined); i++) {
    const page = await log.list({ limit: 1, before });
    paged.push(...page.items.map((r) => r.target));
    before = page.next;
  }
  t.same(paged, ['job:d', 'job:c', 'job:b', 'job:a'], 'a page at a time, the cursor skips none');
  // Appended late, behind newer records, and a replacement of a record in the middle.
  const e = record('job:e');
  const f = record('job:f');
  await log.append(f);
  await log.append(e);
  await log.append({ ...b, outcome: 'error' });
  t.same(await ids(), ['job:f', 'job:e', 'job:d', 'job:c', 'job:b', 'job:a']);
  t.match((await log.list({ limit: 1, before: c.id })).items, [{ id: b.id, outcome: 'error' }]);
  t.same(
    log.kept().map((r) => r.target),
    ['job:a', 'job:b', 'job:c', 'job:d', 'job:e', 'job:f'],
    'a checkpoint keeps them in id order',
  );
});

t.test('an audit line is JSON.stringify({ a: record }) and a newline, free text escaped', async (t) => {
  const base: AuditRecord = {
    id: '0mwt7yla80001ub5',
    at: '2026-01-01T00:00:00.000Z',
    token: 'ops "night" \\ shift',
    action: 'job.run',
    target: 'job:quote " backslash \\ newline \n unicode ✓ \u2028 lone \ud800',
    ip: '::ffff:127.0.0.1',
    outcome: 'error',
    status: 503,
    code: 'STORE_WRITE_FAILED',
    host: 'h-1\t',
  };
  for (const record of [base, { ...base, outcome: 'ok' as const, status: 202, code: null }, { ...base, status: Number.NaN }]) {
    t.equal(auditLine(record), `${JSON.stringify({ a: record })}\n`);
  }
});
