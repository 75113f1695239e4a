import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { Bus, compileFilter } from '../../../core/engine/bus.js';

const bus = (capacity?: number): Bus => new Bus({ clock: createManualClock(Date.UTC(2026, 0, 1)), logger: silentLogger(), ...(capacity ? { capacity } : {}) });

t.test('every event is { seq, type, at, data } with seq growing by one', async (t) => {
  const b = bus();
  const seen: AnyHostEvent[] = [];
  b.on('*', (e) => seen.push(e));
  b.emit('job.enabled', { job: 'a' });
  b.emit('job.disabled', { job: 'a' });
  t.same(seen, [
    { seq: 1, type: 'job.enabled', at: '2026-01-01T00:00:00.000Z', data: { job: 'a' } },
    { seq: 2, type: 'job.disabled', at: '2026-01-01T00:00:00.000Z', data: { job: 'a' } },
  ]);
  t.equal(b.seq, 2);
});

t.test('a throwing or rejecting listener never breaks the emitter or other listeners', async (t) => {
  const b = bus();
  const got: number[] = [];
  b.on('job.enabled', () => {
    throw new Error('listener bug');
  });
  b.on('*', async () => {
    throw new Error('async listener bug');
  });
  b.on('job.enabled', (e) => got.push(e.seq));
  t.doesNotThrow(() => b.emit('job.enabled', { job: 'a' }));
  b.emit('job.enabled', { job: 'b' });
  t.same(got, [1, 2]);
});

t.test('unsubscribe stops delivery', async (t) => {
  const b = bus();
  let n = 0;
  const off = b.on('*', () => n++);
  b.emit('job.enabled', { job: 'a' });
  off();
  b.emit('job.enabled', { job: 'a' });
  t.equal(n, 1);
});

t.test('the ring keeps the newest N events for replay by seq, and reports gaps', async (t) => {
  const b = bus(100);
  for (let i = 0; i < 250; i++) b.emit('job.enabled', { job: `j${i}` });
  const tail = b.since(240);
  t.same(
    tail.events.map((e) => e.seq),
    [241, 242, 243, 244, 245, 246, 247, 248, 249, 250],
  );
  t.equal(tail.gap, false);
  const old = b.since(10);
  t.equal(old.gap, true);
  t.equal(old.events.length, 100);
  t.equal(old.events[0]!.seq, 151);
  t.same(b.since(250).events, []);
  // a seq from the future (the host restarted) replays everything buffered, flagged as a gap
  const future = b.since(99_999);
  t.equal(future.gap, true);
  t.equal(future.events.length, 100);
});

t.test('the default ring holds 10,000 events', async (t) => {
  const b = bus();
  for (let i = 0; i < 10_050; i++) b.emit('job.enabled', { job: 'x' });
  const all = b.since(0);
  t.equal(all.events.length, 10_000);
  t.equal(all.gap, true);
});

t.test('subscribe replays then streams with no gap and no duplicate', async (t) => {
  const b = bus();
  for (let i = 0; i < 5; i++) b.emit('job.enabled', { job: 'a' });
  const seqs: number[] = [];
  const sub = b.subscribe({}, (e) => seqs.push(e.seq), 2);
  b.emit('job.enabled', { job: 'a' });
  sub.close();
  b.emit('job.enabled', { job: 'a' });
  t.same(seqs, [3, 4, 5, 6]);
  t.equal(sub.gap, false);
});

t.test('filters: job, exact type, and globs', async (t) => {
  const ev = (type: string, job: string | null): AnyHostEvent => ({ seq: 1, type, at: '', data: { job } }) as unknown as AnyHostEvent;
  t.ok(compileFilter({})(ev('run.started', 'a')));
  t.ok(compileFilter({ type: ['run.*'] })(ev('run.started', 'a')));
  t.notOk(compileFilter({ type: ['run.*'] })(ev('job.enabled', 'a')));
  t.ok(compileFilter({ type: ['job.enabled', 'run.failed'] })(ev('run.failed', 'a')));
  t.ok(compileFilter({ job: ['a', 'b'] })(ev('run.failed', 'b')));
  t.notOk(compileFilter({ job: ['a'] })(ev('run.failed', 'b')));
  t.notOk(compileFilter({ job: ['a'] })(ev('host.started', null)));
  t.ok(compileFilter({ type: ['*'] })(ev('host.started', null)));
  // One value as a string, as a library caller writes it: the same as a list of one.
  t.ok(compileFilter({ type: 'run.failed', job: 'a' })(ev('run.failed', 'a')));
  t.notOk(compileFilter({ type: 'run.failed' })(ev('run.started', 'a')), 'not read letter by letter');
  t.notOk(compileFilter({ type: 'run.*' })(ev('job.disabled', 'a')), "a glob's letters are no '*' of their own");
  // What no event type is: refused, not a filter that matches nothing.
  t.throws(() => compileFilter({ type: ['run.faild'] }), { code: 'INVALID_BODY', message: /unknown event type "run\.faild"/ });
  t.throws(() => compileFilter({ type: ['nope.*'] }), { code: 'INVALID_BODY' });
  t.throws(() => compileFilter({ type: 5 as never }), { code: 'INVALID_BODY', message: /^type: expected a string or an array of strings/ });
  t.throws(() => bus().iterate({ job: [1] as never }), { code: 'INVALID_BODY' }, 'events() refuses at the call');
  // Job names take `*` globs, as tokens' `jobs` do; what no job could be named is refused.
  t.ok(compileFilter({ job: ['deploy-*'] })(ev('run.failed', 'deploy-web')));
  t.ok(compileFilter({ job: ['x', '*-web'] })(ev('run.failed', 'deploy-web')));
  t.notOk(compileFilter({ job: ['deploy-*'] })(ev('run.failed', 'cleanup')));
  t.notOk(compileFilter({ job: ['*'] })(ev('host.started', null)), 'host events belong to no job');
  t.throws(() => compileFilter({ job: ['BAD NAME'] }), { code: 'INVALID_BODY', message: /^job: "BAD NAME" is not a job name/ });
  t.throws(() => compileFilter({ job: ['deploy.*'] }), { code: 'INVALID_BODY' });
});

t.test('on(): an event type that does not exist, or a listener that is no function, is refused', async (t) => {
  const b = bus();
  t.throws(() => b.on('run.faild' as never, () => undefined), { code: 'INVALID_BODY', message: /unknown event type "run\.faild"/ });
  t.throws(() => b.on('run.started', 5 as never), { code: 'INVALID_BODY', message: 'listener: expected a function' });
  const off = b.on('run.started', () => undefined);
  off();
});
