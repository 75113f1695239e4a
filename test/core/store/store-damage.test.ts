import { closeSync, cpSync, existsSync, openSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { type DamageReport, describeReport } from '../../../core/contract/store-health.js';
import { describeLine } from '../../../core/store/store-damage.js';
import { captureLogger, gate, startHost, startServer, tempDir, until } from '../../helpers.js';

const noop = (): undefined => undefined;

/**
 * Damages one line in place, as a bad disk or a stray write would: four bytes (NUL unless told)
 * over the `"source"` key, after the id, job and status, so the report can still say whose run it
 * was. Returns the line's 1-based number.
 */
function damageLine(file: string, match: (line: string) => boolean, bytes = Buffer.alloc(4)): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex(match);
  if (i < 0) throw new Error(`no line matches in ${file}`);
  const lineStart = Buffer.byteLength(
    lines
      .slice(0, i)
      .map((l) => `${l}\n`)
      .join(''),
  );
  const at = lineStart + Buffer.byteLength(lines[i]!.slice(0, lines[i]!.indexOf('"source"')));
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
  return i + 1;
}

const damagedLogs = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
  lines.filter((l) => l['code'] === 'STORE_DAMAGED' && l['level'] === 50);
const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

t.test('a damaged line in a sealed history segment: reported, copied aside, listed on /ready until acknowledged; the rest loads', async (t) => {
  const dir = tempDir(t);
  const store = { storeOptions: { segmentSize: 5 }, config: { store: { keepRuns: 1000 } } };
  const a = await startHost(t, { dir, ...store });
  a.host.register({ name: 'a', handler: noop });
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push((await a.host.wait((await a.host.trigger('a')).runId)).id);
  await a.host.stop();
  await a.clock.advance(1000); // the next host's run ids must not repeat these
  // Segments 1 and 2 are sealed and in the checkpoint's index; the third run of segment 1 is hit.
  const seg1 = path.join(dir, 'segments', '1.ndjson');
  const line = damageLine(seg1, (l) => l.includes(ids[2]!));
  t.equal(line, 3);
  const asFound = readFileSync(seg1);

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir, ...store, logger, clock: a.clock });
  b.host.register({ name: 'a', handler: noop });
  // Found by the background read of history after the start, before any page asks for it.
  await until(async () => ((await b.request('GET', '/ready')).json['warnings'] as unknown[]).length > 0, 5000, 'the damage on /ready');
  const ready = await b.request('GET', '/ready');
  t.equal(ready.status, 200, 'damage is reported, not a reason to take the host out of service');
  const warnings = ready.json['warnings'] as Array<DamageReport & { code: string; message: string }>;
  t.equal(warnings.length, 1);
  t.match(warnings[0], {
    code: 'STORE_DAMAGED',
    kind: 'segment',
    n: 1,
    file: 'segments/1.ndjson',
    lines: [3],
    missing: 0,
    lost: [{ line: 3, record: 'finished run', runId: ids[2], job: 'a', status: 'succeeded', loadedElsewhere: false }],
    aside: /^segments\/1\.ndjson\.damaged-\d+$/,
    acknowledgedAt: null,
  });
  t.notMatch(ready.text, dir, 'no file system path of the server in the answer');
  t.same(readFileSync(path.join(dir, warnings[0]!.aside!)), asFound, 'the copy is the file as it was found');

  const logged = damagedLogs(logs);
  t.equal(logged.length, 1, 'one error log line');
  t.match(logged[0], { file: seg1, lines: [3], damageId: warnings[0]!.id });
  t.equal(logs.filter((l) => l['code'] === 'STORE_CORRUPT').length, 0, 'not taken for a torn tail');

  // Every readable line loads; the damaged run is gone, and the host keeps running.
  const page = await b.host.runs({ limit: 100 });
  t.same(
    page.items.map((r) => r.id),
    ids.filter((id) => id !== ids[2]).reverse(),
  );
  t.equal(await b.host.run(ids[2]!), undefined);
  t.equal(damagedLogs(logs).length, 1, 'reading the segment again does not report it again');
  const next = await b.host.trigger('a');
  t.equal((await b.host.wait(next.runId)).status, 'succeeded');

  let metrics = await b.metrics();
  t.equal(metric(metrics, 'jobhost_store_damaged_lines_total'), 1);
  t.equal(metric(metrics, 'jobhost_store_damage_unacknowledged'), 1);
  t.match((await b.request('GET', '/store/damage')).json, { items: [{ id: warnings[0]!.id, acknowledgedAt: null }] });

  const ack = await b.request('POST', '/store/damage/ack', { body: {} });
  t.equal(ack.status, 200);
  t.match(ack.json, { acknowledged: [{ id: warnings[0]!.id, acknowledgedAt: /^\d{4}-/ }], unknown: [], remaining: 0 });
  t.same((await b.request('GET', '/ready')).json['warnings'], []);
  metrics = await b.metrics();
  t.equal(metric(metrics, 'jobhost_store_damage_unacknowledged'), 0);
  t.equal(metric(metrics, 'jobhost_store_damaged_lines_total'), 1, 'a counter: acknowledging does not take it back');
  await b.host.stop();

  // The acknowledgement is durable: the same damage, read again on the next start, stays quiet.
  const again = captureLogger();
  const c = await startServer(t, { dir, ...store, logger: again.logger, clock: a.clock });
  await c.host.runs({ limit: 100 }); // reads every segment, the damaged one included
  t.same((await c.request('GET', '/ready')).json['warnings'], []);
  t.match((await c.request('GET', '/store/damage')).json, { items: [{ id: warnings[0]!.id, acknowledgedAt: /^\d{4}-/ }] });
  t.equal(damagedLogs(again.lines).length, 0);
  t.equal(readdirSync(path.join(dir, 'segments')).filter((f) => f.includes('.damaged-')).length, 1, 'no second copy');
});

t.test('a damaged journal line after a crash: the acknowledged run it held is named as lost; the journal is copied before it is deleted', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'later', handler: noop });
  const r1 = await a.host.trigger('later', { delay: '1h' });
  const r2 = await a.host.trigger('later', { delay: '1h' });
  const r3 = await a.host.trigger('later', { delay: '1h' });
  await a.host.flush();
  cpSync(dir, crashed, { recursive: true }); // as a kill -9 would leave it: no closing checkpoint
  const journalName = readdirSync(crashed).find((f) => /^journal-\d+\.ndjson$/.test(f))!;
  const journal = path.join(crashed, journalName);
  const line = damageLine(journal, (l) => l.includes(r2.runId));
  // And a line that is JSON but no record of a journal: damage too.
  writeFileSync(journal, readFileSync(journal, 'utf8').replace('\n', '\n{"hello":"world"}\n'));
  const asFound = readFileSync(journal);

  const { logger, lines: logs } = captureLogger();
  const b = await startHost(t, { dir: crashed, clock: a.clock, logger, start: false });
  b.host.register({ name: 'later', handler: noop });
  await b.host.start();
  const [report] = b.host.storeHealth().damage;
  t.match(report, {
    kind: 'journal',
    file: journalName,
    lines: [2, line + 1],
    lost: [
      { line: 2, record: 'unknown', runId: null, loadedElsewhere: false },
      { line: line + 1, record: 'unfinished run', runId: r2.runId, job: 'later', status: 'queued', loadedElsewhere: false },
    ],
  });
  t.match(describeReport(report!), /acknowledged run \w+ of job later, queued, not finished \(it will not run\)/);
  t.same(readFileSync(path.join(crashed, report!.aside!)), asFound, 'copied as found');
  t.notOk(existsSync(journal), 'then the load checkpoint deleted the journal');
  t.match(damagedLogs(logs), [{ file: journal, lines: [2, line + 1] }]);

  // Every readable line loaded: the other two runs are there and run at their time.
  t.equal(await b.host.run(r2.runId), undefined);
  await b.clock.advance(3_600_000);
  t.equal((await b.host.wait(r1.runId)).status, 'succeeded');
  t.equal((await b.host.wait(r3.runId)).status, 'succeeded');
  await b.host.stop();

  // Still listed after a restart (the checkpoint kept it), until acknowledged.
  const c = await startHost(t, { dir: crashed, clock: a.clock });
  t.same(
    c.host.storeHealth().damage.map((r) => r.id),
    [report!.id],
  );
  t.match(await c.host.ackStoreDamage(['nope', report!.id]), { acknowledged: [{ id: report!.id }], unknown: ['nope'] });
  await c.host.stop();
  const d = await startHost(t, { dir: crashed, clock: a.clock });
  t.same(d.host.storeHealth().damage, [], 'an acknowledged journal report is dropped: its journal is gone');
});

t.test('a damaged line in the open segment after a crash: the run is recovered from its journal record; the same damage is not reported twice', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const a = await startHost(t, { dir });
  const hold = gate();
  a.host.register({ name: 'w', concurrency: 3, handler: () => hold.promise });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await a.host.trigger('w')).runId);
  await a.host.flush(); // the journal has all three as running
  hold.open();
  for (const id of ids) await a.host.wait(id);
  await a.host.flush(); // and the segment has them as succeeded
  cpSync(dir, crashed, { recursive: true });
  await a.clock.advance(1000); // the next host's run ids must not repeat these
  const seg = path.join(crashed, 'segments', '1.ndjson');
  t.equal(
    damageLine(seg, (l) => l.includes(ids[1]!)),
    2,
  );

  const { logger, lines: logs } = captureLogger();
  const b = await startHost(t, { dir: crashed, clock: a.clock, logger });
  t.match(b.host.storeHealth().damage, [{ kind: 'segment', n: 1, lines: [2], lost: [{ record: 'finished run', runId: ids[1], loadedElsewhere: true }] }]);
  // The journal still had it as running: recovered as interrupted (no attempts left: failed).
  t.match(await b.host.run(ids[1]!), { status: 'failed', error: { code: 'INTERRUPTED' } });
  t.match(await b.host.run(ids[0]!), { status: 'succeeded' });
  t.match(await b.host.run(ids[2]!), { status: 'succeeded' });
  t.equal(damagedLogs(logs).length, 1);
  // Appends go on after the damaged line; the fold marker counts it, so counts stay exact.
  b.host.register({ name: 'w', handler: noop });
  const more = await b.host.wait((await b.host.trigger('w')).runId);
  t.equal(more.status, 'succeeded');
  await b.host.stop();

  const again = captureLogger();
  const c = await startHost(t, { dir: crashed, clock: a.clock, logger: again.logger, start: false });
  c.host.register({ name: 'w', handler: noop });
  await c.host.start();
  t.equal(damagedLogs(again.lines).length, 0, 'the open segment is read again on start: known damage, not a new report');
  t.equal(c.host.storeHealth().damage.length, 1);
  t.match(c.host.job('w')!.counts, { succeeded: 3, failed: 1 });
  t.same((await c.host.runs()).items.map((r) => r.id).sort(), [...ids, more.id].sort());
});

t.test('a damaged last line of the newest journal (complete, no NUL bytes) is damage, not a tear: the acknowledged trigger it held is reported', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'later', handler: noop });
  const r1 = await a.host.trigger('later', { delay: '1h' });
  const r2 = await a.host.trigger('later', { delay: '1h' });
  await a.host.flush();
  cpSync(dir, crashed, { recursive: true }); // as a kill -9 would leave it
  const journalName = readdirSync(crashed).find((f) => /^journal-\d+\.ndjson$/.test(f))!;
  const journal = path.join(crashed, journalName);
  const line = damageLine(journal, (l) => l.includes(r2.runId), Buffer.from('####'));
  t.equal(line, readFileSync(journal, 'utf8').split('\n').length - 1, 'the last line, newline-terminated');
  const asFound = readFileSync(journal);

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir: crashed, clock: a.clock, logger });
  b.host.register({ name: 'later', handler: noop });
  const warnings = (await b.request('GET', '/ready')).json['warnings'] as DamageReport[];
  t.match(warnings, [
    {
      kind: 'journal',
      file: journalName,
      lines: [line],
      lost: [{ line, record: 'unfinished run', runId: r2.runId, job: 'later', status: 'queued', loadedElsewhere: false }],
      aside: new RegExp(`^${journalName.replace('.', '\\.')}\\.damaged-\\d+$`),
    },
  ]);
  t.same(readFileSync(path.join(crashed, warnings[0]!.aside!)), asFound, 'copied as found');
  t.match(damagedLogs(logs), [{ file: journal, lines: [line] }]);
  t.equal(logs.filter((l) => l['code'] === 'STORE_CORRUPT').length, 0, 'not called a torn tail');
  t.equal(metric(await b.metrics(), 'jobhost_store_damaged_lines_total'), 1);
  t.equal(await b.host.run(r2.runId), undefined);
  await b.clock.advance(3_600_000);
  t.equal((await b.host.wait(r1.runId)).status, 'succeeded', 'the line before it loaded');
});

t.test(
  'a damaged last line of the open segment (complete, no NUL bytes): copied aside and reported before anything changes the file, and kept in it',
  async (t) => {
    const dir = tempDir(t);
    const crashed = tempDir(t);
    const a = await startHost(t, { dir });
    const hold = gate();
    a.host.register({ name: 'w', concurrency: 2, handler: () => hold.promise });
    const ids = [(await a.host.trigger('w')).runId, (await a.host.trigger('w')).runId];
    await a.host.flush(); // the journal has both as running
    hold.open();
    for (const id of ids) await a.host.wait(id);
    await a.host.flush();
    cpSync(dir, crashed, { recursive: true });
    await a.clock.advance(1000);
    const seg = path.join(crashed, 'segments', '1.ndjson');
    const last = readFileSync(seg, 'utf8').split('\n').at(-2)!;
    const victim = ids.find((id) => last.includes(id))!;
    t.equal(
      damageLine(seg, (l) => l.includes(victim), Buffer.from('####')),
      2,
    );
    const asFound = readFileSync(seg);

    const { logger, lines: logs } = captureLogger();
    const b = await startServer(t, { dir: crashed, clock: a.clock, logger });
    const [report] = (await b.request('GET', '/ready')).json['warnings'] as DamageReport[];
    t.match(report, { kind: 'segment', n: 1, lines: [2], lost: [{ record: 'finished run', runId: victim, loadedElsewhere: true }] });
    t.same(readFileSync(path.join(crashed, report!.aside!)), asFound, 'copied as found');
    t.equal(damagedLogs(logs).length, 1);
    t.equal(logs.filter((l) => l['code'] === 'STORE_CORRUPT').length, 0, 'not called a torn tail');
    t.equal(metric(await b.metrics(), 'jobhost_store_damaged_lines_total'), 1);
    t.ok(readFileSync(seg).subarray(0, asFound.length).equals(asFound), 'not truncated: the damaged line stays where it was');
    t.match(await b.host.run(victim), { status: 'failed', error: { code: 'INTERRUPTED' } });
    b.host.register({ name: 'w', handler: noop });
    const more = await b.host.wait((await b.host.trigger('w')).runId);
    await b.host.stop();

    // Found again at the next start: the same report, not a second one; counts stay exact.
    const again = captureLogger();
    const c = await startHost(t, { dir: crashed, clock: a.clock, logger: again.logger, start: false });
    c.host.register({ name: 'w', handler: noop });
    await c.host.start();
    t.equal(damagedLogs(again.lines).length, 0);
    t.same(
      c.host.storeHealth().damage.map((r) => r.id),
      [report!.id],
    );
    t.same((await c.host.runs()).items.map((r) => r.id).sort(), [...ids, more.id].sort());
  },
);

t.test('zero-filled bytes at the end (a crash on ext4 mid-append) are a torn tail, newline or not: a warning, no report', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'a', handler: noop });
  const runs = [await a.host.wait((await a.host.trigger('a')).runId), await a.host.wait((await a.host.trigger('a')).runId)];
  await a.host.flush();
  // As a kill -9 would leave it: a crash tears only what no checkpoint counted yet (a stop's does).
  cpSync(dir, crashed, { recursive: true });
  await a.clock.advance(1000);
  const seg = path.join(crashed, 'segments', '1.ndjson');
  // The last record half zeros (its newline reached the disk), then a zero-filled block.
  t.equal(
    damageLine(seg, (l) => l.includes(runs[1]!.id)),
    2,
  );
  writeFileSync(seg, Buffer.concat([readFileSync(seg), Buffer.alloc(4096)]));
  const { logger, lines: logs } = captureLogger();
  const b = await startHost(t, { dir: crashed, logger, clock: a.clock });
  t.same(b.host.storeHealth().damage, []);
  t.match(
    logs.filter((l) => l['code'] === 'STORE_CORRUPT'),
    [{ level: 40, tornLines: 2 }],
  );
  t.equal(damagedLogs(logs).length, 0);
  t.match(await b.host.run(runs[0]!.id), { status: 'succeeded' });
});

t.test('a torn tail is not damage: a warning, no report, no copy', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'a', handler: noop });
  await a.host.wait((await a.host.trigger('a')).runId);
  await a.host.stop();
  const seg = path.join(dir, 'segments', '1.ndjson');
  writeFileSync(seg, readFileSync(seg, 'utf8') + '{"id":"torn","job":"a","sta');
  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir, logger });
  t.same(b.host.storeHealth().damage, []);
  t.same((await b.request('GET', '/ready')).json['warnings'], []);
  t.match(
    logs.filter((l) => l['code'] === 'STORE_CORRUPT'),
    [{ level: 40, tornLines: 1 }],
  );
  t.equal(damagedLogs(logs).length, 0);
  t.same(
    readdirSync(path.join(dir, 'segments')).filter((f) => f.includes('.damaged-')),
    [],
  );
});

t.test('describeLine tells what a damaged line held from what is left of it', async (t) => {
  const bad = (text: string, line = 7): { line: number; text: string; torn: boolean } => ({ line, text, torn: false });
  t.same(describeLine('segment', bad('{"id":"0mwt7yla80001ub5","job":"a","status":"failed",\0\0')), {
    line: 7,
    record: 'finished run',
    runId: '0mwt7yla80001ub5',
    job: 'a',
    status: 'failed',
  });
  t.match(describeLine('journal', bad('{"r":{"id":"0mwt7yla80001ub5","job":"a","status":"running"')), { record: 'unfinished run', status: 'running' });
  t.match(describeLine('journal', bad('{"r":{"id":"0mwt7yla80001ub5","jo\0\0')), { record: 'run', runId: '0mwt7yla80001ub5', job: null });
  t.match(describeLine('journal', bad('{"j":"nightly","f":{"enab\0')), { record: 'job flags', job: 'nightly' });
  t.match(describeLine('journal', bad('{"n":{"id":"0mwt7yla80002ub5","job":"a","runId":"0mwt7yla80001ub5"\0')), {
    record: 'notification',
    runId: '0mwt7yla80001ub5',
  });
  t.match(describeLine('journal', bad('{"d":{"id":"abc"\0')), { record: 'damage report' });
  t.match(describeLine('journal', bad('\0\0\0\0')), { record: 'unknown', runId: null });
  t.match(describeLine('segment', bad('\0\0\0\0')), { record: 'finished run' }, "a segment's zeros: a run's line torn");
  t.match(describeLine('segment', bad('garbage')), { record: 'unknown', runId: null }, 'text with nothing of a run in it, appended from outside');
});

t.test('an unreadable state.json: set aside, rebuilt from journals and segments, reported as damage saying what only it held', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  // A checkpoint after every finished run: the delayed run and the flag below end up in it alone.
  const a = await startHost(t, { dir, start: false, storeOptions: { checkpointRuns: 1 } });
  a.host.register({ name: 'later', handler: noop });
  a.host.register({ name: 'off', handler: noop });
  await a.host.start();
  await a.host.disable('off');
  const before = await a.host.trigger('later', { delay: '1h' });
  const done = await a.host.wait((await a.host.trigger('later')).runId);
  await a.host.flush(); // its commit wrote checkpoint 2
  const after = await a.host.trigger('later', { delay: '1h' });
  await a.host.flush();
  cpSync(dir, crashed, { recursive: true }); // as a kill -9 would leave it
  t.same(
    readdirSync(crashed).filter((f) => /^journal-/.test(f)),
    ['journal-2.ndjson'],
  );
  await a.clock.advance(1000); // the next host's run ids must not repeat these
  const state = path.join(crashed, 'state.json');
  const fd = openSync(state, 'r+');
  writeSync(fd, Buffer.from('####'), 0, 4, 10);
  closeSync(fd);
  const asFound = readFileSync(state);

  const { logger, lines: logs } = captureLogger();
  const c = await startServer(t, { dir: crashed, clock: a.clock, logger, start: false });
  c.host.register({ name: 'later', handler: noop });
  c.host.register({ name: 'off', handler: noop });
  await c.host.start();
  const warnings = (await c.request('GET', '/ready')).json['warnings'] as Array<DamageReport & { message: string }>;
  t.match(warnings, [{ code: 'STORE_DAMAGED', kind: 'checkpoint', file: 'state.json', aside: /^state\.json\.damaged-\d+$/, lines: [], missing: 0, lost: [] }]);
  t.match(warnings[0]!.message, /is lost and cannot be listed: runs queued, delayed or running at the last checkpoint/);
  t.match(warnings[0]!.message, /kept: every finished run in the history segments/);
  t.same(readFileSync(path.join(crashed, warnings[0]!.aside!)), asFound, 'the file as found, set aside');
  t.match(damagedLogs(logs), [{ file: state, damageId: warnings[0]!.id, reason: /JSON/ }]);
  const metrics = await c.metrics();
  t.equal(metric(metrics, 'jobhost_store_damaged_lines_total'), 1);
  t.equal(metric(metrics, 'jobhost_store_damage_unacknowledged'), 1);

  // What the report says: the checkpoint's delayed run and flag are gone; history and what was
  // journaled since are kept, and the job's counters are rebuilt from history.
  t.equal(await c.host.run(before.runId), undefined);
  t.equal(c.host.job('off')!.enabled, true);
  t.match(await c.host.run(done.id), { status: 'succeeded' });
  t.match(c.host.job('later')!.counts, { succeeded: 1 });
  t.match(await c.host.run(after.runId), { status: 'queued' });
  await c.host.stop();
  t.same(
    readdirSync(crashed).filter((f) => /^journal-/.test(f)),
    ['journal-4.ndjson'],
    'the journal it was rebuilt from is covered by the new checkpoints and removed, never appended to again',
  );

  // Kept until acknowledged, across restarts; then dropped (state.json is never read back as it was).
  const d = await startHost(t, { dir: crashed, clock: a.clock });
  t.same(
    d.host.storeHealth().damage.map((r) => [r.id, r.acknowledgedAt]),
    [[warnings[0]!.id, null]],
  );
  t.match(await d.host.ackStoreDamage(), { acknowledged: [{ id: warnings[0]!.id }] });
  await d.host.stop();
  const e = await startHost(t, { dir: crashed, clock: a.clock });
  t.same(e.host.storeHealth().damage, []);
});

t.test('a sealed segment cut short: the lines the index counts and the file no longer has are reported as missing', async (t) => {
  const dir = tempDir(t);
  const store = { storeOptions: { segmentSize: 5 }, config: { store: { keepRuns: 1000 } } };
  const a = await startHost(t, { dir, ...store });
  a.host.register({ name: 'a', handler: noop });
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push((await a.host.wait((await a.host.trigger('a')).runId)).id);
  await a.host.stop(); // segments 1 and 2 sealed and indexed, 5 runs each
  await a.clock.advance(1000);
  // Segment 1 cut inside its third line (after the run's id), segment 2 right after its fourth.
  const seg1 = path.join(dir, 'segments', '1.ndjson');
  const lines1 = readFileSync(seg1, 'utf8').split('\n');
  truncateSync(seg1, Buffer.byteLength(`${lines1[0]}\n${lines1[1]}\n`) + lines1[2]!.indexOf('"job"'));
  const seg2 = path.join(dir, 'segments', '2.ndjson');
  const lines2 = readFileSync(seg2, 'utf8').split('\n');
  truncateSync(seg2, Buffer.byteLength(lines2.slice(0, 4).join('\n') + '\n'));
  const asFound = readFileSync(seg1);

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir, ...store, logger, clock: a.clock });
  b.host.register({ name: 'a', handler: noop });
  await until(async () => ((await b.request('GET', '/ready')).json['warnings'] as unknown[]).length === 2, 5000, 'both segments on /ready');
  const warnings = ((await b.request('GET', '/ready')).json['warnings'] as Array<DamageReport & { message: string }>).sort((x, y) => x.n - y.n);
  t.match(warnings, [
    { kind: 'segment', n: 1, lines: [3], missing: 2, absent: false, lost: [{ line: 3, record: 'finished run', runId: ids[2] }] },
    { kind: 'segment', n: 2, lines: [], missing: 1, absent: false, lost: [] },
  ]);
  t.match(warnings[0]!.message, /2 lines the checkpoint counts are missing \(the file was cut short\)/);
  t.match(warnings[1]!.message, /1 line the checkpoint counts are missing \(the file was cut short\)/);
  t.same(readFileSync(path.join(dir, warnings[0]!.aside!)), asFound, 'copied as found');
  t.equal(damagedLogs(logs).length, 2);
  t.equal(metric(await b.metrics(), 'jobhost_store_damaged_lines_total'), 4, 'a missing line counts as a damaged one');
  t.same(
    (await b.host.runs({ limit: 100 })).items.map((r) => r.id),
    ids.filter((_, i) => ![2, 3, 4, 9].includes(i)).reverse(),
    'every run still in the files loads',
  );
});

t.test('the journal the checkpoint names, deleted from outside: reported as gone with what it held, kept across restarts until acknowledged', async (t) => {
  const dir = tempDir(t);
  const crashed = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'later', handler: noop });
  const acknowledged = await a.host.trigger('later', { delay: '1h' });
  await a.host.flush();
  cpSync(dir, crashed, { recursive: true }); // as a kill -9 would leave it
  await a.clock.advance(1000);
  const { checkpoint } = JSON.parse(readFileSync(path.join(crashed, 'state.json'), 'utf8')) as { checkpoint: number };
  const journalName = `journal-${checkpoint}.ndjson`;
  t.match(readFileSync(path.join(crashed, journalName), 'utf8'), acknowledged.runId, 'the acknowledged trigger is only in the journal');
  rmSync(path.join(crashed, journalName));

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir: crashed, clock: a.clock, logger });
  const ready = await b.request('GET', '/ready');
  t.equal(ready.status, 200);
  const warnings = ready.json['warnings'] as Array<DamageReport & { message: string }>;
  t.match(warnings, [
    {
      code: 'STORE_DAMAGED',
      kind: 'journal',
      n: checkpoint,
      file: journalName,
      absent: true,
      aside: null,
      lines: [],
      missing: 0,
      lost: [],
      acknowledgedAt: null,
    },
  ]);
  t.match(
    warnings[0]!.message,
    /journal-\d+\.ndjson is missing \(deleted from outside: the checkpoint names it.*is lost and cannot be listed .*: runs triggered since and not finished \(they will not run\)/,
  );
  t.match(damagedLogs(logs), [{ damageId: warnings[0]!.id, file: path.join(crashed, journalName) }]);
  t.equal(metric(await b.metrics(), 'jobhost_store_damaged_lines_total'), 1, 'a journal gone counts as one line: how many it had is not known');
  t.equal(await b.host.run(acknowledged.runId), undefined, 'what the report says: the run only the journal held is gone');
  await b.host.stop();

  // Kept across a restart (the new checkpoint names a journal that exists), until acknowledged.
  const again = captureLogger();
  const c = await startHost(t, { dir: crashed, clock: a.clock, logger: again.logger });
  t.same(
    c.host.storeHealth().damage.map((r) => [r.id, r.acknowledgedAt]),
    [[warnings[0]!.id, null]],
  );
  t.equal(damagedLogs(again.lines).length, 0, 'not found again');
  t.match(await c.host.ackStoreDamage(), { acknowledged: [{ id: warnings[0]!.id }] });
  await c.host.stop();
  const d = await startHost(t, { dir: crashed, clock: a.clock });
  t.same(d.host.storeHealth().damage, [], 'an acknowledged report of a journal gone is dropped');
});

t.test('the open segment deleted from outside after a stop: the finished runs the checkpoint counted in it are reported gone', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'a', handler: noop });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await a.host.wait((await a.host.trigger('a')).runId)).id);
  await a.host.stop(); // the closing checkpoint's marker: 4 lines in open segment 1
  await a.clock.advance(1000);
  rmSync(path.join(dir, 'segments', '1.ndjson'));

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir, logger, clock: a.clock });
  b.host.register({ name: 'a', handler: noop });
  const warnings = (await b.request('GET', '/ready')).json['warnings'] as Array<DamageReport & { message: string }>;
  t.match(warnings, [{ code: 'STORE_DAMAGED', kind: 'segment', n: 1, file: 'segments/1.ndjson', absent: true, missing: 4, lines: [], lost: [], aside: null }]);
  t.match(warnings[0]!.message, /segments\/1\.ndjson is missing .*the 4 finished runs the checkpoint counted in it are gone from history/);
  t.match(damagedLogs(logs), [{ damageId: warnings[0]!.id, missing: 4 }]);
  t.equal(metric(await b.metrics(), 'jobhost_store_damaged_lines_total'), 4);
  t.same((await b.host.runs({ limit: 100 })).items, []);
  t.match(b.host.job('a')!.counts, { succeeded: 4 }, 'the counters still count them');
  const more = await b.host.wait((await b.host.trigger('a')).runId);
  await b.host.stop();

  const again = captureLogger();
  const c = await startHost(t, { dir, clock: a.clock, logger: again.logger });
  t.equal(damagedLogs(again.lines).length, 0, 'not found again: the new checkpoint counts the new segment');
  t.same(
    c.host.storeHealth().damage.map((r) => [r.id, r.acknowledgedAt]),
    [[warnings[0]!.id, null]],
  );
  t.same(
    (await c.host.runs()).items.map((r) => r.id),
    [more.id],
  );
  t.match(await c.host.ackStoreDamage(), { acknowledged: [{ id: warnings[0]!.id }] });
  await c.host.stop();
  const d = await startHost(t, { dir, clock: a.clock });
  t.same(d.host.storeHealth().damage, []);
});

t.test('the open segment cut short from outside after a stop: the lines the checkpoint counts are damage, not a torn tail', async (t) => {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'a', handler: noop });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await a.host.wait((await a.host.trigger('a')).runId)).id);
  await a.host.stop(); // the closing checkpoint's marker: 4 lines in open segment 1
  await a.clock.advance(1000);
  // Cut inside the third line, after the run's id: to a reader without the marker, a torn tail.
  const seg = path.join(dir, 'segments', '1.ndjson');
  const lines = readFileSync(seg, 'utf8').split('\n');
  truncateSync(seg, Buffer.byteLength(`${lines[0]}\n${lines[1]}\n`) + lines[2]!.indexOf('"job"'));
  const asFound = readFileSync(seg);

  const { logger, lines: logs } = captureLogger();
  const b = await startServer(t, { dir, logger, clock: a.clock });
  b.host.register({ name: 'a', handler: noop });
  const warnings = (await b.request('GET', '/ready')).json['warnings'] as Array<DamageReport & { message: string }>;
  t.match(warnings, [
    {
      kind: 'segment',
      n: 1,
      lines: [3],
      missing: 1,
      absent: false,
      lost: [{ line: 3, record: 'finished run', runId: ids[2] }],
      aside: /^segments\/1\.ndjson\.damaged-\d+$/,
    },
  ]);
  t.match(warnings[0]!.message, /1 line the checkpoint counts are missing \(the file was cut short\)/);
  t.same(readFileSync(path.join(dir, warnings[0]!.aside!)), asFound, 'copied as found');
  t.equal(logs.filter((l) => l['code'] === 'STORE_CORRUPT').length, 0, 'not called a torn tail');
  t.equal(metric(await b.metrics(), 'jobhost_store_damaged_lines_total'), 2);
  t.same(
    (await b.host.runs({ limit: 100 })).items.map((r) => r.id),
    [ids[1], ids[0]],
  );
  const more = await b.host.wait((await b.host.trigger('a')).runId);
  await b.host.stop();

  const again = captureLogger();
  const c = await startHost(t, { dir, clock: a.clock, logger: again.logger });
  t.equal(damagedLogs(again.lines).length, 0, 'not found again');
  t.same(
    c.host.storeHealth().damage.map((r) => r.id),
    [warnings[0]!.id],
  );
  t.same(
    (await c.host.runs()).items.map((r) => r.id),
    [more.id, ids[1], ids[0]],
  );
});
