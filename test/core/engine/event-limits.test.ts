import t from 'tap';
import { createManualClock } from '../../../core/contract/clock.js';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { Bus } from '../../../core/engine/bus.js';
import { approxJsonSize, eventSize } from '../../../core/engine/event-ring.js';
import { startHost } from '../../helpers.js';

/**
 * The bus's bounds (SPEC §3: nothing grows memory without bound): the replay buffer in bytes as
 * well as in count, and an events() iterator whose consumer falls behind.
 */

const KIB = 1024;
const bus = (capacity: number, maxBytes: number): Bus =>
  new Bus({ clock: createManualClock(Date.UTC(2026, 0, 1)), logger: silentLogger(), capacity, maxBytes });
const succeeded = (b: Bus, runId: string, result: unknown): AnyHostEvent =>
  b.emit('run.succeeded', { job: 'big', runId, attempt: 1, durationMs: 1, result }) as AnyHostEvent;

t.test('approxJsonSize follows JSON.stringify closely for the shapes events carry', async (t) => {
  for (const value of [{ a: 'x'.repeat(1000), b: [1, 2, 3], c: { d: null, e: true } }, 'text', [], { count: 3 }]) {
    const exact = JSON.stringify(value).length;
    const approx = approxJsonSize(value);
    t.ok(approx >= exact * 0.8 && approx <= exact * 1.5 + 16, `${approx} for ${exact}`);
  }
});

t.test('the replay buffer is bounded in bytes: large results push the oldest events out, and since= says gap', async (t) => {
  const b = bus(1000, 64 * KIB);
  const big = 'x'.repeat(10 * KIB);
  for (let i = 1; i <= 20; i++) succeeded(b, `r${i}`, { big });
  const { events: kept, bytes } = b.buffered;
  t.ok(bytes <= 64 * KIB, `${bytes} bytes kept`);
  t.ok(kept >= 5 && kept <= 6, `${kept} events of ~10 KiB kept, not 20`);
  const replay = b.since(0);
  t.equal(replay.gap, true, 'the oldest have left');
  t.equal(replay.events.length, kept);
  t.equal(replay.events.at(-1)!.seq, 20, 'the newest are the ones kept');
  t.same(
    replay.events.map((e) => e.seq),
    Array.from({ length: kept }, (_, i) => 21 - kept + i),
    'consecutive, up to the newest',
  );
  t.equal(b.since(20 - kept).gap, false, 'a client that saw everything before the kept ones misses nothing');
  // Small events are bounded by count as before.
  const small = bus(100, 64 * KIB);
  for (let i = 0; i < 250; i++) small.emit('job.enabled', { job: 'a' });
  t.equal(small.buffered.events, 100);
});

t.test('one event larger than the whole bound is not kept at all; the next small one is', async (t) => {
  const b = bus(1000, 64 * KIB);
  succeeded(b, 'r1', 'x'.repeat(65 * KIB));
  t.same(b.buffered, { events: 0, bytes: 0 });
  t.match(b.since(0), { events: [], gap: true });
  b.emit('job.enabled', { job: 'a' });
  t.match(b.since(1), { events: [{ seq: 2 }], gap: false });
  t.equal(b.buffered.bytes, eventSize(b.since(1).events[0]!));
});

t.test('events.bufferBytes in the config bounds the host bus', async (t) => {
  const { host } = await startHost(t, { config: { events: { bufferBytes: 64 * KIB } } });
  host.register({ name: 'big', handler: () => 'x'.repeat(20 * KIB) });
  for (let i = 0; i < 6; i++) await host.wait((await host.trigger('big')).runId);
  t.ok(host.bus.buffered.bytes <= 64 * KIB, `${host.bus.buffered.bytes} bytes`);
  t.equal(host.bus.since(0).gap, true);
});

t.test('a slow events() consumer: the iterator stops following it, gives what it buffered, then EVENTS_OVERFLOW; since= resumes', async (t) => {
  const b = bus(1000, 1024 * KIB);
  const it = b.iterate({}, undefined, { maxBuffered: 5 });
  t.equal(b.listenerCount(), 1);
  for (let i = 0; i < 12; i++) b.emit('job.enabled', { job: `j${i}` });
  t.equal(b.listenerCount(), 0, 'unsubscribed at the overflow: nothing more is buffered');
  const got: number[] = [];
  for (let i = 0; i < 5; i++) got.push((await it.next()).value!.seq);
  t.same(got, [1, 2, 3, 4, 5]);
  await t.rejects(it.next(), { code: 'EVENTS_OVERFLOW', details: { seq: 5 } });
  t.same(await it.next(), { value: undefined, done: true }, 'then it is done');
  // Resume where it stopped: the replay buffer still has the rest.
  const again = b.iterate({}, 5, { maxBuffered: 100 });
  const rest: number[] = [];
  for (let i = 0; i < 7; i++) rest.push((await again.next()).value!.seq);
  t.same(rest, [6, 7, 8, 9, 10, 11, 12]);
  await again.return!();
  t.equal(b.listenerCount(), 0);
});

t.test('the iterator bound is in bytes too, and a consumer that keeps up never overflows', async (t) => {
  const b = bus(1000, 1024 * KIB);
  const it = b.iterate({ job: ['big'] }, undefined, { maxBufferedBytes: 32 * KIB });
  for (let i = 1; i <= 2; i++) succeeded(b, `r${i}`, 'x'.repeat(10 * KIB));
  t.equal(b.listenerCount(), 1, 'two of ~10 KiB fit');
  succeeded(b, 'r3', 'x'.repeat(20 * KIB));
  t.equal(b.listenerCount(), 0, 'the third would pass 32 KiB');
  t.equal((await it.next()).value!.seq, 1);
  t.equal((await it.next()).value!.seq, 2);
  await t.rejects(it.next(), { code: 'EVENTS_OVERFLOW', details: { seq: 2 } });

  const live = b.iterate({}, undefined, { maxBuffered: 3 });
  for (let i = 0; i < 50; i++) {
    b.emit('job.enabled', { job: 'a' });
    t.equal((await live.next()).value!.type, 'job.enabled');
  }
  t.equal(b.listenerCount(), 1, 'still subscribed');
  await live.return!();
});

t.test('host.events() takes the bounds', async (t) => {
  const { host } = await startHost(t);
  const it = host.events({ type: ['job.*'], maxBuffered: 2 });
  for (const name of ['a', 'b', 'c']) host.register({ name, handler: () => null });
  t.equal((await it.next()).value!.type, 'job.registered');
  t.equal((await it.next()).value!.type, 'job.registered');
  await t.rejects(it.next(), { code: 'EVENTS_OVERFLOW' });
});
